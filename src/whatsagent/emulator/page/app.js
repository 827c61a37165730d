// The emulator's chat page: each pane is one simulated user's phone, chatting with the business (the bot).
// Plain JS, no dependencies; live updates arrive as server-sent events from /api/events.
"use strict";

const S = {
  business: {},
  users: new Map(), // key -> user json
  convs: new Map(), // key -> Map(id -> message json), in arrival order
  owner: new Map(), // message id -> user key
  open: [], // keys of open panes, left to right
  focused: null,
  typing: new Map(), // key -> timeout id
  unread: new Map(), // key -> count
  faults: {},
  statuses: {},
  quote: new Map(), // key -> message id being replied to
};

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, cls, text) => {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
};
const esc = (s) =>
  String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

const REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🙏"];
const AVATAR_COLORS = ["#25d366", "#34b7f1", "#ff8f00", "#e91e63", "#7e57c2", "#00897b", "#f4511e", "#5c6bc0"];

const ICON = {
  tick: '<svg class="ticks" viewBox="0 0 16 11"><path fill="currentColor" d="M11.07.65 10.4.13a.48.48 0 0 0-.67.08L4.8 6.54 2.63 4.5a.45.45 0 0 0-.65.02l-.55.57a.44.44 0 0 0 .02.63l2.93 2.74c.23.2.6.18.8-.06l5.95-7.15a.47.47 0 0 0-.06-.6Z"/></svg>',
  dbl: '<svg class="ticks CLS" viewBox="0 0 16 11"><path fill="currentColor" d="M11.07.65 10.4.13a.48.48 0 0 0-.67.08L4.8 6.54 2.63 4.5a.45.45 0 0 0-.65.02l-.55.57a.44.44 0 0 0 .02.63l2.93 2.74c.23.2.6.18.8-.06l5.95-7.15a.47.47 0 0 0-.06-.6Z"/><path fill="currentColor" d="m15.07.65-.67-.52a.48.48 0 0 0-.67.08L8.8 6.54l-.83-.78-.95 1.14 1.43 1.34c.23.2.6.18.8-.06l5.95-7.15a.47.47 0 0 0-.06-.6Z"/></svg>',
  clock: '<svg class="ticks pending" viewBox="0 0 16 16"><path fill="currentColor" d="M8 1.5a6.5 6.5 0 1 0 0 13 6.5 6.5 0 0 0 0-13Zm0 11.7A5.2 5.2 0 1 1 8 2.8a5.2 5.2 0 0 1 0 10.4Zm.6-8.6H7.4v4.1l3.4 2 .6-1-2.8-1.7V4.6Z"/></svg>',
  failed: '<svg class="ticks failed" viewBox="0 0 16 16"><path fill="currentColor" d="M8 1a7 7 0 1 0 0 14A7 7 0 0 0 8 1Zm.8 10.6H7.2V10h1.6v1.6Zm0-3H7.2V4.4h1.6v4.2Z"/></svg>',
  reply: '<svg viewBox="0 0 24 24"><path fill="currentColor" d="M10 9V5l-7 7 7 7v-4.1c5 0 8.5 1.6 11 5.1-1-5-4-10-11-11Z"/></svg>',
  list: '<svg viewBox="0 0 24 24"><path fill="currentColor" d="M3 13h2v-2H3v2Zm0 4h2v-2H3v2Zm0-8h2V7H3v2Zm4 4h14v-2H7v2Zm0 4h14v-2H7v2ZM7 7v2h14V7H7Z"/></svg>',
  link: '<svg viewBox="0 0 24 24"><path fill="currentColor" d="M14 3v2h3.6l-9.8 9.8 1.4 1.4L19 6.4V10h2V3h-7Zm5 16H5V5h7V3H5a2 2 0 0 0-2 2v14c0 1.1.9 2 2 2h14a2 2 0 0 0 2-2v-7h-2v7Z"/></svg>',
  mic: '<svg viewBox="0 0 24 24"><path fill="currentColor" d="M12 15a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v7a3 3 0 0 0 3 3Zm5.3-3a5.3 5.3 0 0 1-10.6 0H5a7 7 0 0 0 6 6.9V22h2v-3.1a7 7 0 0 0 6-6.9h-1.7Z"/></svg>',
  pin: '<svg viewBox="0 0 24 24"><path fill="#ea4335" d="M12 2a7 7 0 0 0-7 7c0 5.2 7 13 7 13s7-7.8 7-13a7 7 0 0 0-7-7Zm0 9.5A2.5 2.5 0 1 1 12 6.5a2.5 2.5 0 0 1 0 5Z"/></svg>',
  lock: '<svg viewBox="0 0 24 24"><path fill="currentColor" d="M18 8h-1V6A5 5 0 0 0 7 6v2H6a2 2 0 0 0-2 2v10c0 1.1.9 2 2 2h12a2 2 0 0 0 2-2V10a2 2 0 0 0-2-2ZM9 6a3 3 0 0 1 6 0v2H9V6Z"/></svg>',
  note: '<svg viewBox="0 0 24 24"><path fill="currentColor" d="M12 3v10.6A4 4 0 1 0 14 17V7h4V3h-6Z"/></svg>',
};

// ---------------------------------------------------------------------------------------------- API

async function api(path, body, method) {
  const init = { method: method || (body === undefined ? "GET" : "POST"), headers: {} };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
  if (!resp.ok) throw new Error((data && data.error) || `HTTP ${resp.status}`);
  return data;
}

function toast(text) {
  const t = $("#toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 3500);
}

// ------------------------------------------------------------------------------------- formatting

// WhatsApp's formatting: *bold* _italic_ ~strike~ ```mono``` `code`, "> " quotes, links.
function waFormat(raw) {
  const blocks = [];
  let s = esc(raw).replace(/```([\s\S]+?)```/g, (_, code) => {
    blocks.push(code.includes("\n") ? `<pre>${code.replace(/^\n/, "")}</pre>` : `<span class="mono">${code}</span>`);
    return `\u0000${blocks.length - 1}\u0000`;
  });
  s = s.replace(/`([^`\n]+)`/g, (_, code) => {
    blocks.push(`<code>${code}</code>`);
    return `\u0000${blocks.length - 1}\u0000`;
  });
  const wrap = (mark, tag) => {
    const m = mark.replace(/[*~]/g, "\\$&");
    const re = new RegExp(`(^|[\\s(\\[{>"'.,;:!?-])${m}(?=\\S)([^\\n]*?\\S)${m}(?=$|[\\s)\\]}<"'.,;:!?-])`, "g");
    s = s.replace(re, `$1<${tag}>$2</${tag}>`);
  };
  wrap("*", "strong");
  wrap("_", "em");
  wrap("~", "s");
  s = s.replace(/(https?:\/\/[^\s<]+[^\s<.,;:!?)\]'"])/g, '<a href="$1" target="_blank" rel="noopener noreferrer">$1</a>');
  s = s.replace(/^&gt; ?(.*)$/gm, "<blockquote>$1</blockquote>");
  s = s.replace(/<\/blockquote>\n/g, "</blockquote>");
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => blocks[Number(i)]);
}

const hhmm = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const fmtPhone = (d) => (d ? (d.length === 11 && d[0] === "1" ? `+1 ${d.slice(1, 4)}-${d.slice(4, 7)}-${d.slice(7)}` : `+${d}`) : "");
const userTitle = (u) => u.name || (u.wa_id ? fmtPhone(u.wa_id) : u.user_id);
const userSub = (u) => (u.wa_id ? fmtPhone(u.wa_id) : `username only · ${u.user_id}`);
function avatarFor(u, node) {
  const name = userTitle(u) || "?";
  let h = 0;
  for (const ch of u.key) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  node.style.background = AVATAR_COLORS[h % AVATAR_COLORS.length];
  node.textContent = (name.replace(/[^\p{L}\p{N}]/gu, "")[0] || "?").toUpperCase();
}

const mediaSrc = (m) => (m && m.id ? `/api/media/${encodeURIComponent(m.id)}` : m && m.link) || "";

// ---------------------------------------------------------------------------------------- summary

function preview(msg) {
  if (msg.direction === "system") return msg.text;
  if (msg.direction === "in") {
    const m = msg.message;
    const t = m.type;
    if (t === "text") return m.text.body;
    if (t === "interactive") return (m.interactive.button_reply || m.interactive.list_reply || {}).title || "interactive";
    if (t === "button") return m.button.text;
    if (t === "image") return "Photo" + (m.image.caption ? `: ${m.image.caption}` : "");
    if (t === "audio") return m.audio.voice ? "Voice message" : "Audio";
    if (t === "video") return "Video" + (m.video.caption ? `: ${m.video.caption}` : "");
    if (t === "document") return "Document: " + (m.document.filename || "file");
    if (t === "sticker") return "Sticker";
    if (t === "location") return "Location" + (m.location.name ? `: ${m.location.name}` : "");
    if (t === "contacts") return "Contact: " + m.contacts.map((c) => c.name.formatted_name).join(", ");
    if (t === "reaction") return m.reaction.emoji ? `Reacted ${m.reaction.emoji}` : "Removed a reaction";
    return t;
  }
  const b = msg.body;
  if (msg.type === "text") return b.text.body;
  if (msg.type === "template") return msg.text || b.template.name;
  if (msg.type === "interactive") return (b.interactive.body || {}).text || "Products";
  if (msg.type === "reaction") return `Reacted ${b.reaction.emoji}`;
  const names = { image: "Photo", audio: "Audio", video: "Video", document: "Document", sticker: "Sticker", location: "Location", contacts: "Contact" };
  const name = names[msg.type] || msg.type;
  return msg.text ? `${name}: ${msg.text}` : name;
}

// ------------------------------------------------------------------------------------- chat list

// A preview without WhatsApp's formatting marks, as WhatsApp shows it: only paired delimiters at word
// boundaries are formatting; my_helper_fn, 6*7 and a lone ~ keep their characters.
const plain = (text) =>
  String(text || "")
    .replace(/```([\s\S]+?)```/g, "$1")
    .replace(/`([^`\n]+)`/g, "$1")
    .replace(/(^|[^\p{L}\p{N}])([*_~])(?=\S)([^\n]*?\S)\2(?![\p{L}\p{N}])/gu, "$1$3")
    .replace(/\s+/g, " ")
    .trim();

function renderChatList() {
  const list = $("#chat-list");
  list.textContent = "";
  const users = [...S.users.values()].sort((a, b) => lastTime(b.key) - lastTime(a.key));
  for (const u of users) {
    const li = el("li", "chat-item" + (S.open.includes(u.key) ? " open" : ""));
    li.dataset.key = u.key;
    const av = el("div", "avatar");
    avatarFor(u, av);
    const body = el("div", "ci-body");
    const top = el("div", "ci-top");
    top.append(el("span", "ci-name", userTitle(u)));
    const last = lastMessage(u.key);
    top.append(el("span", "ci-time", last ? hhmm(last.time) : ""));
    const bottom = el("div", "ci-bottom");
    bottom.append(el("span", "ci-last", last ? plain(preview(last)) : userSub(u)));
    const n = S.unread.get(u.key) || 0;
    if (n) bottom.append(el("span", "ci-badge", String(n)));
    body.append(top, bottom);
    li.append(av, body);
    li.onclick = () => openPane(u.key);
    list.append(li);
  }
}

function lastMessage(key) {
  const conv = S.convs.get(key);
  if (!conv || !conv.size) return null;
  let last = null;
  for (const m of conv.values()) if (!last || m.time >= last.time) last = m;
  return last;
}
const lastTime = (key) => (lastMessage(key) || { time: 0 }).time;

// ----------------------------------------------------------------------------------------- panes

function paneOf(key) {
  return document.querySelector(`.pane[data-key="${CSS.escape(key)}"]`);
}

// Open chats survive a reload of the page (per emulator address).
const OPEN_KEY = "whatsagent-emulator-open";
function saveOpen() {
  try {
    localStorage.setItem(OPEN_KEY, JSON.stringify({ open: S.open, focused: S.focused }));
  } catch (e) {
    /* private mode: chats just do not survive a reload */
  }
}
function restoreOpen() {
  let saved = null;
  try {
    saved = JSON.parse(localStorage.getItem(OPEN_KEY) || "null");
  } catch (e) {
    saved = null;
  }
  if (!saved || !Array.isArray(saved.open)) return;
  for (const key of saved.open) if (S.users.has(key) && !S.open.includes(key)) openPane(key);
  if (saved.focused && S.open.includes(saved.focused)) focusPane(saved.focused);
}
const narrow = () => window.matchMedia("(max-width: 720px)").matches;
function layoutChanged() {
  document.body.classList.toggle("chat-open", S.open.length > 0);
  saveOpen();
}

function openPane(key) {
  S.unread.set(key, 0);
  if (!S.open.includes(key)) {
    S.open.push(key);
    const maxPanes = narrow() ? 1 : Math.max(1, Math.floor(($("#panes").clientWidth || 1200) / 330));
    while (S.open.length > maxPanes) {
      const gone = S.open.shift();
      const p = paneOf(gone);
      if (p) p.remove();
    }
    buildPane(key);
  }
  focusPane(key);
  renderChatList();
  $("#empty").hidden = S.open.length > 0;
  layoutChanged();
}

function closePane(key) {
  S.open = S.open.filter((k) => k !== key);
  const p = paneOf(key);
  if (p) p.remove();
  if (S.focused === key) S.focused = S.open[S.open.length - 1] || null;
  $("#empty").hidden = S.open.length > 0;
  renderChatList();
  layoutChanged();
}

function focusPane(key) {
  S.focused = key;
  saveOpen();
  document.querySelectorAll(".pane").forEach((p) => p.classList.toggle("focused", p.dataset.key === key));
  const p = paneOf(key);
  if (p) $(".text-input", p).focus();
}

function buildPane(key) {
  const pane = $("#pane-tpl").content.firstElementChild.cloneNode(true);
  pane.dataset.key = key;
  $("#panes").append(pane);
  pane.addEventListener("mousedown", () => { if (S.focused !== key) focusPane(key); });
  $(".pane-close", pane).onclick = () => closePane(key);
  $(".window-badge", pane).onclick = () => toggleWindow(key);
  const composer = $(".composer", pane);
  const input = $(".text-input", pane);
  input.addEventListener("input", () => composer.classList.toggle("has-text", input.value.trim() !== ""));
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      sendText(key);
    }
  });
  $(".send", pane).onclick = () => (input.value.trim() ? sendText(key) : toggleRecording(key));
  $(".quote-cancel", pane).onclick = () => setQuote(key, null);
  const menu = $(".attach-menu", pane);
  $(".attach", pane).onclick = (e) => {
    e.stopPropagation();
    menu.hidden = !menu.hidden;
  };
  menu.addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (!b) return;
    menu.hidden = true;
    attach(key, b.dataset.attach);
  });
  renderPaneHeader(key);
  renderMessages(key);
}

function renderPaneHeader(key) {
  const pane = paneOf(key);
  const u = S.users.get(key);
  if (!pane || !u) return;
  avatarFor(u, $(".avatar", pane));
  $(".name", pane).textContent = userTitle(u);
  const sub = $(".sub", pane);
  const typing = S.typing.has(key);
  sub.textContent = typing ? `${S.business.name || "Business"} is typing…` : `${userSub(u)} · chatting with ${S.business.name || "the bot"}`;
  sub.classList.toggle("typing", typing);
  const badge = $(".window-badge", pane);
  badge.textContent = u.window_open ? "24 h window open" : "window closed";
  badge.classList.toggle("closed", !u.window_open);
  badge.title = u.window_open ? "Click to close the 24-hour window (free-form sends fail with 131047)" : "Click to reopen the window";
}

function renderMessages(key) {
  const pane = paneOf(key);
  if (!pane) return;
  const box = $(".messages", pane);
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  box.textContent = "";
  box.append(el("div", "day-chip", "Today"));
  const chip = el("div", "e2e-chip");
  chip.innerHTML = ICON.lock + "A local emulator: messages go to your bot as signed Cloud API webhooks and never leave this machine.";
  box.append(chip);
  const msgs = [...(S.convs.get(key) || new Map()).values()].sort((a, b) => a.time - b.time);
  let prevDir = null;
  for (const m of msgs) {
    if (m.type === "reaction") continue; // shown as a badge on the message it reacts to
    if (m.direction === "system") {
      box.append(el("div", "notice-chip", m.text));
      prevDir = null;
      continue;
    }
    const node = renderMessage(key, m, prevDir !== m.direction);
    if (node) box.append(node);
    prevDir = m.direction;
  }
  if (S.typing.has(key)) {
    const row = el("div", "row in typing-row first");
    const bubble = el("div", "msg in");
    bubble.innerHTML = '<div class="dots"><span></span><span></span><span></span></div>';
    row.append(bubble);
    box.append(row);
  }
  if (atBottom || renderMessages.forceBottom) box.scrollTop = box.scrollHeight;
}

// The user's messages are "out" (right, green); the bot's are "in" (left, white).
function renderMessage(key, m, first) {
  const mine = m.direction === "in";
  const row = el("div", `row ${mine ? "out" : "in"}${first ? " first" : ""}`);
  row.dataset.id = m.id;
  const bubble = el("div", `msg ${mine ? "out" : "in"}`);
  bubble.dataset.id = m.id;
  const meta = el("span", "meta");
  meta.append(document.createTextNode(hhmm(m.time)));
  let buttons = null;
  if (mine) {
    fillUserMessage(bubble, m);
    meta.insertAdjacentHTML("beforeend", userTicks(m));
  } else {
    buttons = fillBotMessage(key, bubble, m);
    meta.insertAdjacentHTML("beforeend", botTicks(m));
  }
  const ctx = mine ? m.message.context : m.body.context && { id: m.body.context.message_id };
  if (ctx && ctx.id) {
    const quoted = quotedNode(key, ctx.id);
    if (quoted) bubble.prepend(quoted);
  }
  const overMedia = bubble.classList.contains("media-only");
  if (overMedia) meta.classList.add("over-media");
  bubble.append(meta);
  if (!mine && m.status === "failed" && m.errors && m.errors.length) {
    const e = m.errors[0];
    const line = el("div", "error-line");
    line.innerHTML = ICON.failed + `<span>Not delivered: ${esc(e.code)} ${esc(e.title)}</span>`;
    line.title = (e.error_data && e.error_data.details) || "";
    bubble.append(line);
  }
  if (mine && m.deliveries && m.deliveries.length && m.deliveries[m.deliveries.length - 1] !== 200) {
    const line = el("div", "error-line");
    const codes = m.deliveries.map((d) => (d === 0 ? "unreachable" : d)).join(", ");
    // The emulator, like WhatsApp, tries a webhook 1 + webhook_retries times, then gives up.
    const attempts = 1 + (S.business.webhook_retries ?? 5);
    const fate = m.deliveries.length >= attempts ? `WhatsApp gave up after ${m.deliveries.length} attempts` : "WhatsApp retries";
    line.innerHTML = ICON.failed + `<span>Bot answered ${esc(codes)}; ${esc(fate)}</span>`;
    bubble.append(line);
  } else if (mine && m.deliveries && m.deliveries.length > 1) {
    meta.title = `delivered ${m.deliveries.length} times: ${m.deliveries.join(", ")}`;
  }
  if (m.reaction) {
    bubble.append(el("span", "reaction-badge", m.reaction));
    row.classList.add("has-reaction");
  }
  const tools = el("div", "tools");
  const replyBtn = el("button", "", "");
  replyBtn.innerHTML = "↩";
  replyBtn.title = "Reply";
  replyBtn.onclick = () => setQuote(key, m.id);
  tools.append(replyBtn);
  if (mine) {
    const again = el("button", "", "↻");
    again.title = "Redeliver this webhook to the bot";
    again.onclick = () => api("/api/redeliver", { message_id: m.id }).then((r) => toast(`Redelivered: bot answered ${r.status}`), (e) => toast(e.message));
    tools.append(again);
  } else {
    const react = el("button", "", "☺");
    react.title = "React";
    react.onclick = (e) => emojiPopup(key, m, e.currentTarget);
    tools.append(react);
  }
  if (buttons) {
    const stack = el("div", "bubble-stack with-buttons");
    stack.append(bubble, buttons);
    row.append(stack);
  } else {
    row.append(bubble);
  }
  row.append(tools);
  return row;
}

function userTicks(m) {
  const d = m.deliveries || [];
  if (!d.length) return ICON.clock;
  if (!d.includes(200)) return ICON.failed;
  return ICON.dbl.replace("CLS", m.read ? "read" : "delivered");
}

function botTicks(m) {
  switch (m.status) {
    case "accepted": return ICON.clock;
    case "sent": return ICON.tick;
    case "delivered": return ICON.dbl.replace("CLS", "delivered");
    case "read": case "played": return ICON.dbl.replace("CLS", "read");
    case "failed": return ICON.failed;
    default: return "";
  }
}

function quotedNode(key, id) {
  const q = S.convs.get(key) && S.convs.get(key).get(id);
  const node = el("div", "quoted");
  const u = S.users.get(key);
  node.append(el("div", "q-name", q ? (q.direction === "in" ? "You" : S.business.name || "Business") : "Message"));
  node.append(el("div", "q-text", q ? preview(q) : id));
  node.onclick = () => {
    const target = paneOf(key) && paneOf(key).querySelector(`.msg[data-id="${CSS.escape(id)}"]`);
    if (target) {
      target.scrollIntoView({ block: "center", behavior: "smooth" });
      target.classList.add("flash");
      setTimeout(() => target.classList.remove("flash"), 1300);
    }
  };
  return u ? node : null;
}

function textNode(text) {
  const t = el("div", "text");
  t.innerHTML = waFormat(text);
  return t;
}

function fillUserMessage(bubble, msg) {
  const m = msg.message;
  const t = m.type;
  if (t === "text") bubble.append(textNode(m.text.body));
  else if (t === "interactive") {
    const r = m.interactive.button_reply || m.interactive.list_reply || {};
    bubble.append(textNode(r.title || ""));
    if (r.description) bubble.append(el("div", "footer", r.description));
  } else if (t === "button") bubble.append(textNode(m.button.text));
  else if (["image", "video", "audio", "document", "sticker"].includes(t)) fillMedia(bubble, t, m[t], m[t].caption);
  else if (t === "location") fillLocation(bubble, m.location);
  else if (t === "contacts") fillContacts(bubble, m.contacts);
  else if (t === "unsupported") bubble.append(el("div", "footer", `Unsupported message (${(m.unsupported || {}).type || "?"})`));
  else bubble.append(el("div", "footer", t));
}

// Returns the node of buttons that hang under the bubble, if any.
function fillBotMessage(key, bubble, msg) {
  const b = msg.body;
  const t = msg.type;
  if (t === "text") bubble.append(textNode(b.text.body));
  else if (["image", "video", "audio", "document", "sticker"].includes(t)) fillMedia(bubble, t, b[t], b[t].caption);
  else if (t === "location") fillLocation(bubble, b.location);
  else if (t === "contacts") fillContacts(bubble, b.contacts);
  else if (t === "interactive") return fillInteractive(key, bubble, msg);
  else if (t === "template") return fillTemplate(key, bubble, msg);
  else bubble.append(el("div", "footer", t));
  return null;
}

function fillMedia(bubble, kind, media, caption) {
  const src = mediaSrc(media);
  if (kind === "image" || kind === "video") {
    const wrap = el("div", "media-wrap");
    const node = el(kind === "image" ? "img" : "video", "media");
    node.src = src;
    if (kind === "video") node.controls = true;
    else node.alt = caption || "image";
    wrap.append(node);
    bubble.append(wrap);
    if (caption) bubble.append(textNode(caption));
    else bubble.classList.add("media-only");
  } else if (kind === "sticker") {
    const wrap = el("div", "sticker");
    const img = el("img");
    img.src = src;
    img.alt = "sticker";
    wrap.append(img);
    bubble.classList.add("sticker-msg");
    bubble.append(wrap);
  } else if (kind === "audio") {
    const box = el("div", "audio");
    const badge = el("div", "mic-badge" + (media.voice ? " voice" : ""));
    badge.innerHTML = media.voice ? ICON.mic : ICON.note;
    const audio = el("audio");
    audio.controls = true;
    audio.preload = "metadata";
    audio.src = src;
    box.append(badge, audio);
    bubble.append(box);
  } else {
    const a = el("a", "doc");
    a.href = src;
    a.target = "_blank";
    a.rel = "noopener";
    const name = media.filename || (media.link ? media.link.split("/").pop() : "Document");
    const ext = (name.split(".").pop() || "doc").slice(0, 4).toUpperCase();
    const icon = el("div", "doc-icon", ext);
    const info = el("div", "");
    info.style.minWidth = "0";
    info.append(el("div", "doc-name", name), el("div", "doc-sub", media.mime_type || ext));
    a.append(icon, info);
    bubble.append(a);
    if (caption) bubble.append(textNode(caption));
  }
}

function fillLocation(bubble, loc) {
  const box = el("div", "location");
  const map = el("a", "map");
  map.href = `https://www.openstreetmap.org/?mlat=${loc.latitude}&mlon=${loc.longitude}#map=16/${loc.latitude}/${loc.longitude}`;
  map.target = "_blank";
  map.rel = "noopener";
  map.style.display = "block";
  const pin = el("span", "pin");
  pin.innerHTML = ICON.pin;
  map.append(pin);
  box.append(map);
  if (loc.name) box.append(el("div", "loc-name", loc.name));
  if (loc.address) box.append(el("div", "loc-sub", loc.address));
  box.append(el("div", "loc-sub", `${Number(loc.latitude).toFixed(5)}, ${Number(loc.longitude).toFixed(5)}`));
  bubble.append(box);
}

function fillContacts(bubble, contacts) {
  for (const c of contacts) {
    const card = el("div", "contact-card");
    const av = el("div", "avatar", (c.name.formatted_name || "?")[0].toUpperCase());
    const info = el("div", "");
    info.append(el("div", "", c.name.formatted_name));
    const phone = (c.phones || [])[0];
    if (phone) info.append(el("div", "c-phone", phone.phone || phone.wa_id));
    card.append(av, info);
    bubble.append(card, el("div", "contact-action", "Message"));
  }
}

function actionButton(label, icon, onclick) {
  const btn = el("button", "action-btn");
  btn.innerHTML = icon;
  btn.append(document.createTextNode(label));
  // Acts when pressed: the pane is drawn again whenever a tick or the typing indicator changes, and a
  // redraw between press and release would swallow the click (it needs both on the same node). Enter
  // and Space still click; a press followed by its own click acts once.
  let pressed = false;
  btn.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    pressed = true;
    onclick(e);
  });
  btn.onclick = (e) => {
    if (pressed) {
      pressed = false;
      return;
    }
    onclick(e);
  };
  return btn;
}

function fillInteractive(key, bubble, msg) {
  const i = msg.body.interactive;
  if (i.header) {
    if (i.header.type === "text") bubble.append(el("div", "header", i.header.text));
    else fillMedia(bubble, i.header.type, i.header[i.header.type], null), bubble.classList.remove("media-only");
  }
  if (i.body) bubble.append(textNode(i.body.text));
  if (i.footer) bubble.append(el("div", "footer", i.footer.text));
  const btns = el("div", "action-btns");
  fillMoreInteractive(key, bubble, btns, msg);
  if (i.type === "button") {
    for (const b of i.action.buttons) {
      const node = actionButton(b.reply.title, ICON.reply, () => tap(key, msg.id, b.reply.id));
      node.classList.add("reply-btn");
      node.dataset.id = b.reply.id;
      btns.append(node);
    }
  } else if (i.type === "list") {
    const node = actionButton(i.action.button, ICON.list, () => openList(key, msg));
    node.classList.add("list-btn");
    btns.append(node);
  } else if (i.type === "cta_url") {
    const p = i.action.parameters;
    btns.append(actionButton(p.display_text, ICON.link, () => window.open(p.url, "_blank", "noopener")));
  }
  return btns.childElementCount ? btns : null;
}

// Interactive kinds beyond buttons, lists and links: a flow (a form), a location request, a call
// permission request, products and carousels. Each offers what WhatsApp's app offers to answer it.
function fillMoreInteractive(key, bubble, btns, msg) {
  const i = msg.body.interactive;
  const p = (i.action && i.action.parameters) || {};
  const answer = async (body) => {
    renderMessages.forceBottom = true;
    try {
      await api(`/api/users/${encodeURIComponent(key)}/answer`, { message_id: msg.id, ...body });
    } catch (e) {
      toast(e.message);
    }
  };
  if (i.type === "flow") {
    btns.append(actionButton(p.flow_cta || "Open form", ICON.list, () => {
      const fields = window.prompt("Fill in the form: its fields as JSON", '{"answer": ""}');
      if (fields === null) return;
      let response;
      try { response = JSON.parse(fields); } catch { toast("Not JSON: write the fields as {\"name\": \"value\"}"); return; }
      answer({ kind: "flow", response });
    }));
  } else if (i.type === "location_request_message") {
    btns.append(actionButton("Send location", ICON.link, () => {
      const at = window.prompt("Your location: latitude, longitude", "52.52, 13.405");
      if (at === null) return;
      const [latitude, longitude] = at.split(",").map((x) => parseFloat(x));
      if (Number.isNaN(latitude) || Number.isNaN(longitude)) { toast("Write a latitude and a longitude"); return; }
      answer({ kind: "location", latitude, longitude });
    }));
  } else if (i.type === "call_permission_request") {
    btns.append(actionButton("Allow calls", ICON.reply, () => answer({ kind: "call_permission", accept: true })));
    btns.append(actionButton("Don't allow", ICON.reply, () => answer({ kind: "call_permission", accept: false })));
  } else if (i.type === "voice_call") {
    btns.append(actionButton(p.display_text || "Call", ICON.link, () => toast("Calls are not emulated")));
  } else if (i.type === "request_contact_info") {
    btns.append(actionButton("Share contact info", ICON.reply, () => toast("Use the contacts attachment to share a card")));
  } else if (["product", "product_list", "catalog_message"].includes(i.type)) {
    const a = i.action || {};
    const skus = a.product_retailer_id ? [a.product_retailer_id]
      : (a.sections || []).flatMap((s) => (s.product_items || []).map((it) => it.product_retailer_id));
    if (skus.length) bubble.append(el("div", "footer", `Products: ${skus.join(", ")}`));
    btns.append(actionButton(i.type === "catalog_message" ? "View catalog" : "View items", ICON.list, () => {
      const sku = window.prompt("Product to order (retailer id)", skus[0] || "");
      if (sku) answer({ kind: "product", product_retailer_id: sku });
    }));
  } else if (i.type === "carousel") {
    for (const card of (i.action && i.action.cards) || []) {
      const node = el("div", "carousel-card");
      const h = card.header || {};
      if (h.type) fillMedia(node, h.type, h[h.type], null);
      if (card.body) node.append(textNode(card.body.text));
      bubble.append(node);
      const ca = card.action || {};
      if (ca.name === "cta_url") btns.append(actionButton(ca.parameters.display_text, ICON.link, () => window.open(ca.parameters.url, "_blank", "noopener")));
      for (const b of ca.buttons || []) btns.append(actionButton(b.quick_reply.title, ICON.reply, () => toast("Carousel quick replies are not emulated yet")));
    }
  } else if (["order_details", "order_status"].includes(i.type)) {
    const order = p.order || {};
    bubble.append(el("div", "footer", `Order ${p.reference_id || ""}: ${order.status || ""}`));
  }
}

function fillTemplate(key, bubble, msg) {
  const tpl = msg.template || { components: [] };
  for (const c of tpl.components) {
    if (c.type === "HEADER" && c.text) bubble.append(el("div", "header", templateHeader(c.text, msg.body.template)));
  }
  bubble.append(textNode(msg.text || ""));
  const footer = tpl.components.find((c) => c.type === "FOOTER");
  if (footer) bubble.append(el("div", "footer", footer.text));
  const buttons = tpl.components.find((c) => c.type === "BUTTONS");
  if (!buttons) return null;
  const btns = el("div", "action-btns");
  for (const b of buttons.buttons) {
    const node = actionButton(b.text, ICON.reply, () => tap(key, msg.id, b.text));
    node.classList.add("reply-btn");
    btns.append(node);
  }
  return btns;
}

function templateHeader(text, template) {
  const params = [];
  for (const c of template.components || []) if ((c.type || "").toLowerCase() === "header") for (const p of c.parameters || []) if (p.type === "text") params.push(p.text);
  let n = 0;
  return text.replace(/\{\{\s*[\w]+\s*\}\}/g, (m) => (n < params.length ? params[n++] : m));
}

// ---------------------------------------------------------------------------------------- actions

async function sendText(key) {
  const pane = paneOf(key);
  const input = $(".text-input", pane);
  const text = input.value;
  if (!text.trim()) return;
  input.value = "";
  $(".composer", pane).classList.remove("has-text");
  const replyTo = S.quote.get(key);
  setQuote(key, null);
  renderMessages.forceBottom = true;
  try {
    const r = await api(`/api/users/${encodeURIComponent(key)}/messages`, { type: "text", text, reply_to: replyTo || undefined });
    if (r.status !== 200) toast(r.status === 0 ? "The bot could not be reached: is it running?" : `The bot answered HTTP ${r.status}`);
  } catch (e) {
    toast(e.message);
  }
}

async function tap(key, messageId, choice) {
  renderMessages.forceBottom = true;
  try {
    await api(`/api/users/${encodeURIComponent(key)}/tap`, { message_id: messageId, choice });
  } catch (e) {
    toast(e.message);
  }
}

function setQuote(key, id) {
  const pane = paneOf(key);
  if (!pane) return;
  const bar = $(".quote-bar", pane);
  if (!id) {
    S.quote.delete(key);
    bar.hidden = true;
    return;
  }
  S.quote.set(key, id);
  const q = S.convs.get(key).get(id);
  $(".q-name", bar).textContent = q.direction === "in" ? "You" : S.business.name || "Business";
  $(".q-text", bar).textContent = preview(q);
  bar.hidden = false;
  $(".text-input", pane).focus();
}

function emojiPopup(key, msg, anchor) {
  document.querySelectorAll(".emoji-pop").forEach((p) => p.remove());
  const pop = el("div", "emoji-pop");
  for (const e of REACTIONS) {
    const b = el("button", msg.reaction === e ? "mine" : "", e);
    b.onclick = async () => {
      pop.remove();
      const emoji = msg.reaction === e ? "" : e;
      try {
        await api(`/api/users/${encodeURIComponent(key)}/messages`, { type: "reaction", message_id: msg.id, emoji });
      } catch (err) {
        toast(err.message);
      }
    };
    pop.append(b);
  }
  const r = anchor.getBoundingClientRect();
  pop.style.left = `${Math.max(8, r.left - 100)}px`;
  pop.style.top = `${r.top - 52}px`;
  pop.style.position = "fixed";
  document.body.append(pop);
  setTimeout(() => document.addEventListener("click", () => pop.remove(), { once: true }), 0);
}

function openList(key, msg) {
  const i = msg.body.interactive;
  const dlg = $("#list-sheet");
  $(".sheet-title", dlg).textContent = i.action.button;
  const body = $(".sheet-body", dlg);
  body.textContent = "";
  const send = $(".sheet-foot .primary", dlg);
  send.disabled = true;
  for (const s of i.action.sections) {
    if (s.title) body.append(el("div", "section-title", s.title));
    for (const r of s.rows) {
      const opt = el("label", "row-opt");
      const txt = el("div", "");
      txt.append(el("div", "r-title", r.title));
      if (r.description) txt.append(el("div", "r-desc", r.description));
      const radio = el("input");
      radio.type = "radio";
      radio.name = "row";
      radio.value = r.id;
      radio.onchange = () => (send.disabled = false);
      opt.append(txt, radio);
      body.append(opt);
    }
  }
  dlg.onclose = () => {
    const chosen = $("input[name=row]:checked", dlg);
    if (dlg.returnValue === "send" && chosen) tap(key, msg.id, chosen.value);
  };
  dlg.returnValue = "";
  dlg.showModal();
}

function formDialog(title, fields, onSend) {
  const dlg = $("#form-sheet");
  $(".sheet-title", dlg).textContent = title;
  const body = $(".sheet-body", dlg);
  body.textContent = "";
  const inputs = {};
  for (const [name, label, value] of fields) {
    const l = el("label", "", label);
    const input = el("input");
    input.name = name;
    input.value = value || "";
    inputs[name] = input;
    l.append(input);
    body.append(l);
  }
  dlg.onclose = () => {
    if (dlg.returnValue === "send") onSend(Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v.value.trim()])));
  };
  dlg.returnValue = "";
  dlg.showModal();
}

const ACCEPT = {
  image: "image/jpeg,image/png",
  document: ".pdf,.txt,.doc,.docx,.xls,.xlsx,.ppt,.pptx,application/pdf,text/plain",
  voice: "audio/*",
  audio: "audio/*",
  video: "video/mp4,video/3gpp",
  sticker: "image/webp",
};

function attach(key, what) {
  const path = `/api/users/${encodeURIComponent(key)}/messages`;
  if (what === "location") {
    formDialog("Send location", [["name", "Place name", "Shop"], ["address", "Address", "1 Main St"], ["latitude", "Latitude", "37.4847"], ["longitude", "Longitude", "-122.1477"]], (v) =>
      api(path, { type: "location", latitude: Number(v.latitude), longitude: Number(v.longitude), name: v.name || undefined, address: v.address || undefined }).catch((e) => toast(e.message)),
    );
    return;
  }
  if (what === "contact") {
    formDialog("Share contact", [["name", "Name", "Bo Li"], ["phone", "Phone", "+1 555 000 9999"]], (v) =>
      api(path, { type: "contacts", contacts: [{ name: v.name, phone: v.phone }] }).catch((e) => toast(e.message)),
    );
    return;
  }
  const pane = paneOf(key);
  const input = $(".file-input", pane);
  input.accept = ACCEPT[what] || "";
  input.value = "";
  input.onchange = async () => {
    const file = input.files[0];
    if (!file) return;
    let caption = "";
    const quoteless = ["image", "video", "document"].includes(what);
    if (quoteless) caption = $(".text-input", pane).value.trim();
    if (caption) {
      $(".text-input", pane).value = "";
      $(".composer", pane).classList.remove("has-text");
    }
    await uploadMedia(key, what === "voice" ? "audio" : what, file, file.type || guessMime(file.name), caption, what === "voice");
  };
  input.click();
}

function guessMime(name) {
  const ext = (name.split(".").pop() || "").toLowerCase();
  return { jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp", pdf: "application/pdf", txt: "text/plain", ogg: "audio/ogg", opus: "audio/ogg", mp3: "audio/mpeg", m4a: "audio/mp4", mp4: "video/mp4" }[ext] || "application/octet-stream";
}

async function uploadMedia(key, kind, blob, mime, caption, voice, filename) {
  const form = new FormData();
  form.append("kind", kind);
  form.append("mime_type", mime);
  if (caption) form.append("caption", caption);
  if (voice) form.append("voice", "true");
  form.append("file", blob, filename || blob.name || "file");
  renderMessages.forceBottom = true;
  try {
    await api(`/api/users/${encodeURIComponent(key)}/messages`, form);
  } catch (e) {
    toast(e.message);
  }
}

const recorder = { rec: null, key: null, chunks: [], started: 0, timer: null };

async function toggleRecording(key) {
  const pane = paneOf(key);
  const composer = $(".composer", pane);
  if (recorder.rec && recorder.key === key) {
    recorder.rec.stop();
    return;
  }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    toast("This browser cannot record audio here; attach a voice note file instead.");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch {
    toast("No microphone access; attach a voice note file instead.");
    return;
  }
  // WhatsApp voice notes are Ogg/Opus; Chromium records WebM/Opus, which is sent as what it is.
  const type = ["audio/ogg;codecs=opus", "audio/webm;codecs=opus"].find((t) => MediaRecorder.isTypeSupported(t)) || "";
  const rec = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
  Object.assign(recorder, { rec, key, chunks: [], started: Date.now() });
  rec.ondataavailable = (e) => recorder.chunks.push(e.data);
  rec.onstop = async () => {
    clearInterval(recorder.timer);
    stream.getTracks().forEach((t) => t.stop());
    composer.classList.remove("recording");
    $(".text-input", pane).placeholder = "Type a message";
    const mime = (rec.mimeType || type || "audio/ogg").replace(";", "; ");
    const blob = new Blob(recorder.chunks, { type: mime });
    recorder.rec = null;
    if (blob.size) await uploadMedia(key, "audio", blob, mime, "", true, mime.includes("webm") ? "voice.webm" : "voice.ogg");
  };
  rec.start();
  composer.classList.add("recording");
  const input = $(".text-input", pane);
  recorder.timer = setInterval(() => {
    const s = Math.floor((Date.now() - recorder.started) / 1000);
    input.placeholder = `● Recording ${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")} — tap the mic to send`;
  }, 250);
}

async function toggleWindow(key) {
  const u = S.users.get(key);
  try {
    await api(`/api/users/${encodeURIComponent(key)}/window`, { open: !u.window_open });
    toast(u.window_open ? "Window closed: the bot's free-form messages will fail with 131047" : "Window open again");
  } catch (e) {
    toast(e.message);
  }
}

// -------------------------------------------------------------------------------------- new chat

function setupNewChat() {
  const form = $("#new-chat");
  const label = $("#new-id-label");
  const idInput = $("#new-id");
  $("#new-chat-btn").onclick = () => {
    form.hidden = !form.hidden;
    if (!form.hidden) $("#new-name").focus();
  };
  $("#new-cancel").onclick = () => (form.hidden = true);
  form.addEventListener("change", (e) => {
    if (e.target.name !== "kind") return;
    const phone = e.target.value === "phone";
    label.firstChild.textContent = phone ? "Number " : "Business-scoped user id ";
    idInput.placeholder = phone ? "15551234567" : "US.13491208655302741918";
    idInput.value = phone ? suggestNumber() : `US.${Math.floor(1e12 + Math.random() * 9e12)}`;
  });
  form.onsubmit = async (e) => {
    e.preventDefault();
    const phone = $("input[name=kind]:checked", form).value === "phone";
    const id = idInput.value.trim() || (phone ? suggestNumber() : `US.${Date.now()}`);
    const body = { name: $("#new-name").value.trim() || undefined };
    if (phone) body.wa_id = id.replace(/[^\d]/g, "");
    else if (id.startsWith("@")) body.username = id.slice(1); // a username-only user; the emulator gives the BSUID
    else body.user_id = id;
    try {
      const u = await api("/api/users", body);
      upsertUser(u);
      form.hidden = true;
      $("#new-name").value = "";
      idInput.value = suggestNumber();
      $("#new-error").textContent = "";
      openPane(u.key);
    } catch (err) {
      $("#new-error").textContent = err.message;
    }
  };
  idInput.value = suggestNumber();
}

function suggestNumber() {
  for (let n = 1234567; ; n += 1111) {
    const candidate = `1555${n}`;
    if (!S.users.has(candidate)) return candidate;
  }
}

// ---------------------------------------------------------------------------------------- faults

function setupFaults() {
  const panel = $("#faults");
  const toggle = () => {
    panel.hidden = !panel.hidden;
    $("#faults-btn").classList.toggle("on", !panel.hidden || hasFaults());
  };
  $("#faults-btn").onclick = toggle;
  $("#faults-close").onclick = toggle;
  panel.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-fault]");
    if (!b) return;
    const [name, args] = JSON.parse(b.dataset.fault);
    try {
      await api(`/api/faults/${name}`, args);
      toast(name === "clear" ? "All faults cleared" : `${b.textContent}: on`);
    } catch (err) {
      toast(err.message);
    }
  });
  $("#latency").onchange = (e) => api("/api/faults/latency", { seconds: Number(e.target.value) }).catch((err) => toast(err.message));
  $("#slow-media").onchange = (e) => api("/api/faults/slow_media", { seconds: Number(e.target.value) }).catch((err) => toast(err.message));
  const statuses = () =>
    api("/api/statuses", { until: $("#status-until").value || null, out_of_order: $("#status-ooo").checked, delay: 0.4 }).catch((err) => toast(err.message));
  $("#status-until").onchange = statuses;
  $("#status-ooo").onchange = statuses;
  $("#redeliver-last").onclick = async () => {
    const key = S.focused;
    const msgs = key ? [...S.convs.get(key).values()].filter((m) => m.direction === "in") : [];
    if (!msgs.length) return toast("Focus a chat with a user message first");
    const last = msgs[msgs.length - 1];
    try {
      const r = await api("/api/redeliver", { message_id: last.id });
      toast(`Redelivered "${preview(last)}": bot answered ${r.status}`);
    } catch (err) {
      toast(err.message);
    }
  };
  const closeWindow = (synchronous) => async () => {
    if (!S.focused) return toast("Focus a chat first");
    await api(`/api/users/${encodeURIComponent(S.focused)}/window`, { open: false, synchronous });
    toast(synchronous ? "Window closed: free-form sends are refused with 131047" : "Window closed: free-form sends fail with 131047 in a status webhook");
  };
  $("#close-window").onclick = closeWindow(false);
  $("#close-window-sync").onclick = closeWindow(true);
}

function hasFaults() {
  const f = S.faults || {};
  return Boolean(f.fail_sends || (f.fail_next && f.fail_next.length) || f.latency || f.slow_media || f.duplicate_webhooks || f.reorder_webhooks || f.drop_statuses);
}

function renderFaults() {
  const f = S.faults || {};
  const box = $("#active-faults");
  box.textContent = "";
  const items = [];
  if (f.fail_sends) {
    const left = f.fail_sends.seconds_left == null ? "until cleared" : `${Math.ceil(f.fail_sends.seconds_left)} s left`;
    items.push(`Sends fail ${Math.round(f.fail_sends.probability * 100)} % with ${f.fail_sends.errors.map((e) => e.join("/")).join(", ")} (${left})`);
  }
  if (f.fail_next && f.fail_next.length) items.push(`Next ${f.fail_next.length} send(s) fail with ${f.fail_next[0].join("/")}`);
  if (f.latency) items.push(`Graph API latency ${f.latency} s`);
  if (f.slow_media) items.push(`Media ${f.slow_media} s slower`);
  if (f.duplicate_webhooks) items.push("Every webhook delivered twice");
  if (f.reorder_webhooks) items.push(`Next ${f.reorder_webhooks} webhooks delivered newest first`);
  if (f.drop_statuses) items.push("Status webhooks dropped");
  if (!items.length) box.append(el("div", "none", "No faults: a healthy WhatsApp."));
  for (const i of items) box.append(el("div", "af", i));
  $("#faults-btn").classList.toggle("on", !$("#faults").hidden || items.length > 0);
  $("#latency").value = String(f.latency || 0);
  $("#slow-media").value = String(f.slow_media || 0);
  const st = S.statuses || {};
  $("#status-until").value = st.until || "";
  $("#status-ooo").checked = Boolean(st.out_of_order);
}

// ------------------------------------------------------------------------------------ live state

function upsertUser(u) {
  S.users.set(u.key, u);
  if (!S.convs.has(u.key)) S.convs.set(u.key, new Map());
  renderPaneHeader(u.key);
  renderChatList();
}

function addMessage(key, msg) {
  if (!S.convs.has(key)) S.convs.set(key, new Map());
  S.convs.get(key).set(msg.id, msg);
  S.owner.set(msg.id, key);
}

function rerender(key) {
  renderMessages(key);
  renderChatList();
}

function handle(ev) {
  switch (ev.event) {
    case "user":
      upsertUser(ev.user);
      break;
    case "message": {
      addMessage(ev.user, ev.message);
      if (ev.message.direction === "out") {
        stopTyping(ev.user);
        if (!S.open.includes(ev.user) && ev.message.type !== "reaction") S.unread.set(ev.user, (S.unread.get(ev.user) || 0) + 1);
      }
      rerender(ev.user);
      renderMessages.forceBottom = false;
      break;
    }
    case "status": {
      const m = S.convs.get(ev.user) && S.convs.get(ev.user).get(ev.id);
      if (m) {
        const rank = { accepted: 0, sent: 1, delivered: 2, read: 3, played: 4, failed: 5 };
        if ((rank[ev.status] ?? 0) > (rank[m.status] ?? 0)) m.status = ev.status;
        if (ev.errors) m.errors = ev.errors;
        renderMessages(ev.user);
      }
      break;
    }
    case "read": {
      const m = S.convs.get(ev.user) && S.convs.get(ev.user).get(ev.id);
      // Marking one message read marks the earlier ones read too (Cloud API docs, Mark messages as read:
      // https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/mark-message-as-read).
      if (m) for (const x of S.convs.get(ev.user).values()) if (x.direction === "in" && x.time <= m.time) x.read = true;
      if (ev.typing) startTyping(ev.user);
      renderMessages(ev.user);
      break;
    }
    case "delivery": {
      const key = S.owner.get(ev.id);
      const m = key && S.convs.get(key).get(ev.id);
      if (m) {
        m.deliveries = ev.deliveries;
        renderMessages(key);
      }
      break;
    }
    case "reaction": {
      const m = S.convs.get(ev.user) && S.convs.get(ev.user).get(ev.id);
      if (m) {
        m.reaction = ev.emoji;
        renderMessages(ev.user);
      }
      break;
    }
    case "refused": {
      // WhatsApp refused one of the bot's sends: say so instead of leaving the typing dots up.
      if (!S.convs.has(ev.user)) break;
      const id = `refused-${Date.now()}-${Math.random().toString(36).slice(2)}`;
      const again = ev.retryable ? " (the bot may try again)" : "";
      const text = `The bot's message was not sent: ${ev.title}${again}`;
      S.convs.get(ev.user).set(id, { id, direction: "system", type: "notice", text, time: Date.now() / 1000 });
      S.typing.has(ev.user) ? stopTyping(ev.user) : renderMessages(ev.user);
      renderChatList();
      break;
    }
    case "faults":
      S.faults = ev.faults;
      renderFaults();
      break;
    case "statuses":
      S.statuses = ev.statuses;
      renderFaults();
      break;
  }
}

// The typing indicator lasts until the bot's next message, or 25 s (Cloud API docs, Typing indicators:
// https://developers.facebook.com/documentation/business-messaging/whatsapp/typing-indicators).
function startTyping(key) {
  clearTimeout(S.typing.get(key));
  S.typing.set(key, setTimeout(() => stopTyping(key), 25000));
  renderPaneHeader(key);
}

function stopTyping(key) {
  if (!S.typing.has(key)) return;
  clearTimeout(S.typing.get(key));
  S.typing.delete(key);
  renderPaneHeader(key);
  renderMessages(key);
}

async function loadState() {
  const st = await api("/api/state");
  S.business = st.business;
  S.faults = st.faults;
  S.statuses = st.statuses;
  S.users.clear();
  S.convs.clear();
  for (const u of st.users) {
    S.users.set(u.key, u);
    S.convs.set(u.key, new Map());
    for (const m of st.conversations[u.key] || []) addMessage(u.key, m);
  }
  const b = S.business;
  $("#biz-line").textContent = `${b.name} · ${fmtPhone(b.display_phone_number)}`;
  $("#side-foot").innerHTML =
    `Graph API <code>${esc(b.graph_url)}</code><br>phone number id <code>${esc(b.phone_number_id)}</code><br>` +
    `webhooks → <code>${esc(b.webhook_url || "not set")}</code>`;
  if (b.console_url) {
    $("#console-link").href = b.console_url;
    $("#console-link").hidden = false;
  }
  $("#empty-hint").textContent = b.webhook_url ? `Webhooks go to ${b.webhook_url}` : "No webhook URL set: messages cannot reach a bot yet.";
  for (const key of S.open) {
    renderPaneHeader(key);
    renderMessages(key);
  }
  if (!loadState.restored) {
    loadState.restored = true;
    restoreOpen();
  }
  renderChatList();
  renderFaults();
}

function connect() {
  const source = new EventSource("/api/events");
  source.addEventListener("hello", () => loadState().catch((e) => toast(e.message)));
  source.onmessage = (e) => handle(JSON.parse(e.data));
  source.onerror = () => {}; // EventSource reconnects by itself; "hello" reloads the state.
}

document.addEventListener("click", (e) => {
  if (!e.target.closest(".attach-wrap")) document.querySelectorAll(".attach-menu").forEach((m) => (m.hidden = true));
});

setupNewChat();
setupFaults();
connect();
