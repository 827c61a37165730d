"""A local WhatsApp for bots: Meta's Cloud API endpoints, signed webhooks, simulated users, faults.

    from whatsagent.emulator import Emulator

    emu = Emulator(phone_number_id="100200300", access_token="test-token", app_secret="test-secret")
    await emu.start()                                   # emu.base_url is the bot's Graph API base URL
    emu.webhook_url = "http://127.0.0.1:8123/whatsapp/webhook"
    ana = emu.user("15551234567", name="Ana")
    await ana.send_text("hi")                           # a signed webhook, exactly as Meta sends it
    [reply] = await ana.wait_for_replies(1)             # what the bot sent back through the Graph API
    await ana.tap("Yes")                                # tap a button of the bot's latest message
    emu.faults.fail_next(2, http_status=400, code=131056)
    emu.close_window(ana)                               # free-form sends now fail with 131047
    emu.statuses = True                                 # sent → delivered → read status webhooks
    await emu.stop()

`run_emulator` serves it standalone with the chat page (the `whatsagent emulator` command).
"""

from whatsagent.emulator.errors import EmulatorError, GraphError
from whatsagent.emulator.faults import Faults
from whatsagent.emulator.server import Emulator, run_emulator
from whatsagent.emulator.state import Delivery, InboundRecord, OutboundRecord, RequestRecord, Tappable
from whatsagent.emulator.statuses import StatusPolicy
from whatsagent.emulator.templates import Template, TemplateButton
from whatsagent.emulator.users import SimulatedUser

__all__ = [
    "Delivery",
    "Emulator",
    "EmulatorError",
    "Faults",
    "GraphError",
    "InboundRecord",
    "OutboundRecord",
    "RequestRecord",
    "SimulatedUser",
    "StatusPolicy",
    "Tappable",
    "Template",
    "TemplateButton",
    "run_emulator",
]
