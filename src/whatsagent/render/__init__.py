"""Rendering: a turn's reply becomes the WhatsApp messages the outbox will send.

`reply` orders and assembles the messages, `markdown` turns the model's Markdown into WhatsApp
formatting, `splitting` cuts long text where a reader would pause.
"""

from whatsagent.render.reply import italic, prepare_media, render

__all__ = ["italic", "prepare_media", "render"]
