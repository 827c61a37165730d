"""What answers a turn: the agent, its context and prompt, its model, teams and user memory.

`context` holds the types a turn shares (`TurnContext`, `Reply`, `Responder`); `agent` the
`whatsagent.Agent` and the adapters for a user's own agent; `prompt` what goes to the model; `models`
which model answers; `offline` the stand-in when none is configured; `teams` routing to specialists;
`memory` what is remembered about each user.
"""
