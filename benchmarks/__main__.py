from benchmarks.webhooks import main

main()
