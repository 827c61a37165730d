from whatsagent.front.process import main

main()
