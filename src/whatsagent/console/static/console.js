// The whatsagent operator console: the operator API, live. No build step, no framework.
"use strict";

const state = { token: "", name: "operator", open: null, q: "", reveal: false, stream: null, refreshing: null, openTurns: new Set() };
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "style") Object.assign(node.style, v); // through the CSSOM: the page's CSP forbids inline styles
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function when(ts) {
  if (!ts) return "";
  const d = new Date(ts * 1000);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.token}`, "X-Operator": state.name };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
    cache: "no-store",
  });
  if (response.status === 401) { signOut("That token was refused (401)."); throw new Error("unauthorized"); }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

// -- sign-in ---------------------------------------------------------------------------------------

function signOut(message) {
  state.token = "";
  sessionStorage.removeItem("whatsagent.token");
  if (state.stream) state.stream.abort();
  $("#app").hidden = true;
  $("#login").hidden = false;
  $("#logout").hidden = true;
  $("#who").textContent = "";
  $("#login-error").textContent = message || "";
}

async function signIn(token, name) {
  state.token = token;
  state.name = name || "operator";
  try {
    await api("/operator/conversations");
  } catch (err) {
    if (err.message !== "unauthorized") $("#login-error").textContent = err.message;
    return;
  }
  sessionStorage.setItem("whatsagent.token", token);
  sessionStorage.setItem("whatsagent.name", state.name);
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#logout").hidden = false;
  $("#who").textContent = state.name;
  await refreshList();
  listen();
}

// -- live updates ----------------------------------------------------------------------------------

async function listen() {
  const controller = new AbortController();
  state.stream = controller;
  let live = false;
  while (state.token && !controller.signal.aborted) {
    try {
      const response = await fetch("/operator/events", {
        headers: { Authorization: `Bearer ${state.token}` }, signal: controller.signal, cache: "no-store",
      });
      if (response.status === 401) { signOut("That token was refused (401)."); return; }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const chunk = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          if (chunk.startsWith("event: ready")) {
            // The server ends each stream after a while and we reconnect at once: refresh everything only
            // after being offline (events may have been missed), not at every routine reconnect.
            if (!live) refresh("*");
            live = true;
            setLive(true);
            continue;
          }
          const data = chunk.split("\n").find((line) => line.startsWith("data: "));
          if (data) refresh(JSON.parse(data.slice(6)).conversation);
        }
      }
      continue; // a routine end of the stream: reconnect at once, still live
    } catch (err) {
      if (controller.signal.aborted) return;
    }
    live = false;
    setLive(false);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function setLive(on) {
  const live = $("#live");
  live.textContent = on ? "live" : "offline";
  live.classList.toggle("off", !on);
}

// Coalesce bursts: one list fetch (and one conversation fetch) per animation frame of changes.
const pending = new Set();
function refresh(conversation) {
  pending.add(conversation);
  if (state.refreshing) return;
  state.refreshing = setTimeout(async () => {
    const changed = new Set(pending);
    pending.clear();
    state.refreshing = null;
    await refreshList();
    if (state.open && (changed.has("*") || changed.has(state.open))) await openConversation(state.open, false);
  }, 50);
}

// -- the list ----------------------------------------------------------------------------------------

const STATUS_LABEL = { bot: "bot", human: "human", waiting: "waiting for a human", "window closed": "window closed", failed: "failed" };

async function refreshList() {
  const params = new URLSearchParams();
  if (state.q) params.set("q", state.q);
  if (state.reveal) params.set("reveal", "1");
  const data = await api(`/operator/conversations?${params}`);
  const list = $("#list");
  list.replaceChildren(...data.conversations.map((c) => {
    const statusClass = c.status === "window closed" ? "closed" : c.status;
    const preview = c.last_message ? (c.last_message.direction === "out" ? "↪ " : "") + c.last_message.text : "";
    // Opened on the press, not the click: a live refresh redraws the list, and one landing between the
    // press and the release would leave the click on an element no longer there (the click is lost).
    const open = (e) => { if (e.button === 0) openConversation(c.id, true); };
    return el("li", { class: c.id === state.open ? "open" : "", "data-id": c.id, "data-status": c.status, onpointerdown: open },
      el("span", { class: "name" }, c.name || c.username || c.number || "unknown", " ",
        el("span", { class: "muted" }, c.number || c.username || "")),
      el("span", { class: `badge ${statusClass}` }, STATUS_LABEL[c.status] || c.status),
      el("span", { class: "preview" }, preview),
      el("span", {}, c.unread ? el("span", { class: "unread", title: "unread" }, c.unread) : "", " ", el("span", { class: "muted" }, when(c.last_activity))),
    );
  }));
}

// -- one conversation ------------------------------------------------------------------------------

async function openConversation(id, markSeen) {
  state.open = id;
  const params = state.reveal ? "?reveal=1" : "";
  const c = await api(`/operator/conversations/${id}${params}`);
  if (markSeen) { await api(`/operator/conversations/${id}/seen`, { method: "POST" }); refreshList(); }
  for (const li of document.querySelectorAll("#list li")) li.classList.toggle("open", li.dataset.id === id);
  const section = $("#conversation");
  section.className = "";
  section.dataset.mode = c.mode;
  const top = el("div", { class: "top" },
    el("h2", {}, c.name || c.username || c.number),
    el("span", { class: "muted" }, [c.number, c.username].filter(Boolean).join(" · "), " · ", c.channel),
    el("span", { class: `badge ${c.mode}`, id: "mode" }, STATUS_LABEL[c.mode]),
    c.mode_reason ? el("span", { class: "muted" }, c.mode_reason) : null,
    c.window_open ? null : el("span", { class: "badge closed" }, "window closed: templates only"),
    el("span", { class: "spacer" }),
    c.mode === "bot"
      ? el("button", { id: "takeover", onclick: () => act(id, "takeover") }, "Take over")
      : el("button", { id: "handback", class: "secondary", onclick: () => act(id, "hand-back") }, "Hand back to the bot"),
    c.mode === "waiting" ? el("button", { id: "takeover", onclick: () => act(id, "takeover") }, "Take over") : null,
  );
  const transcript = el("div", { class: "transcript", id: "transcript" }, ...timeline(c));
  const composer = c.mode === "bot"
    ? el("div", { class: "composer muted" }, "The bot answers this conversation. Take it over to write yourself.")
    : el("form", { class: "composer", onsubmit: (e) => { e.preventDefault(); reply(id); } },
        el("textarea", { id: "reply", placeholder: "Write as the business…", maxlength: "4096" }),
        el("button", { type: "submit", id: "send" }, "Send"));
  const details = el("div", { class: "details" }, ...await sidePanel(c));
  section.replaceChildren(top, el("div", { class: "body" }, el("div", { class: "main-col" }, transcript, composer), details));
  // The panel was built before an await: a turn opened meanwhile (on the panel being replaced) stays open.
  for (const d of section.querySelectorAll("details.turn")) d.open = state.openTurns.has(d.dataset.turn);
  transcript.scrollTop = transcript.scrollHeight;
}

function timeline(c) {
  const items = [];
  for (const m of c.inbound) items.push({ at: m.at, node: el("div", { class: "msg in", "data-id": m.id }, m.text, el("div", { class: "meta" }, when(m.at))) });
  const operatorKeys = new Set();
  for (const r of c.outbound) {
    const byOperator = String(r.key).startsWith("operator:");
    if (byOperator) operatorKeys.add(r.key);
    const failed = r.status === "failed" || r.delivery === "failed";
    const ticks = r.delivery === "read" ? "✓✓ read" : r.delivery === "delivered" ? "✓✓" : r.status === "sent" ? "✓" : r.status;
    items.push({ at: r.created_at, node: el("div", { class: `msg out${byOperator ? " operator" : ""}`, "data-status": r.status },
      r.text,
      el("div", { class: "meta" }, byOperator ? "operator · " : "", when(r.created_at), " ", ticks),
      failed || r.error ? el("div", { class: "err" }, r.error_code ? `${r.error_code}: ` : "", r.error || "") : null,
      r.turn_error ? el("div", { class: "err" }, `turn set aside: ${r.turn_error}`) : null,
      (r.status === "failed" || r.status === "parked") && r.id
        ? el("div", { class: "acts" },
            el("button", { class: "secondary", onclick: () => outboxAct(r.id, "retry") }, "Retry"),
            el("button", { class: "danger", onclick: () => outboxAct(r.id, "discard") }, "Discard"))
        : null,
    ) });
  }
  for (const a of c.actions) {
    if (a.action === "reply") continue;
    items.push({ at: a.created_at, node: el("div", { class: "note" }, `${a.operator}: ${a.action.replace("_", " ")}${a.detail ? ` (${a.detail})` : ""} · ${when(a.created_at)}`) });
  }
  items.sort((a, b) => a.at - b.at);
  return items.map((i) => i.node);
}

async function sidePanel(c) {
  const parts = [el("h3", {}, "Turns")];
  for (const t of c.turns.slice(0, 50)) {
    const total = Math.max(0.001, ...t.spans.map((s) => s.end - s.start));
    const details = el("details", { class: "turn", "data-turn": t.id, open: state.openTurns.has(String(t.id)) },
      el("summary", {}, `#${t.id} ${t.status}`, t.attempts > 1 ? ` · ${t.attempts} runs` : "", ` · ${t.messages.length} in / ${t.outbox.length} out · ${when(t.created_at)}`),
      t.error ? el("div", { class: "error" }, `set aside: ${t.error}`) : null,
      t.spans.length ? null : el("div", { class: "muted" }, t.status === "human" ? "held for a person (no agent run)" : "no model calls recorded"),
      ...t.spans.flatMap((s) => [
        el("div", { class: s.error ? "span failed" : "span", title: s.detail || "" },
          el("span", {}, `${"· ".repeat(s.depth || 0)}${s.name}`),
          el("span", { class: "bar", style: { width: `${Math.max(2, 60 * (s.end - s.start) / total)}px` } }),
          el("span", {}, `${((s.end - s.start) * 1000).toFixed(0)} ms`)),
        // What went wrong in that step (a tool's exception, arguments the model got wrong, a model error).
        s.error ? el("div", { class: "span-error" }, `${"· ".repeat(s.depth || 0)}${s.error}`) : null,
      ]),
    );
    // A live refresh redraws the panel: a turn the operator opened stays open. Recorded at the click
    // itself (the toggle event comes later, perhaps after a redraw replaced this element).
    details.querySelector("summary").addEventListener("click", () => {
      if (details.open) state.openTurns.delete(String(t.id)); else state.openTurns.add(String(t.id));
    });
    parts.push(details);
  }
  parts.push(el("h3", {}, "Memories"));
  try {
    const m = await api(`/operator/conversations/${c.id}/memories`);
    if (!m.memories.length) parts.push(el("div", { class: "muted" }, "Nothing remembered."));
    for (const fact of m.memories) {
      const input = el("input", { value: fact.fact });
      parts.push(el("div", { class: "memory" }, input,
        el("button", { class: "secondary", onclick: () => api(`/operator/conversations/${c.id}/memories/${fact.id}`, { method: "PATCH", body: { fact: input.value } }).then(() => openConversation(c.id, false)) }, "Save"),
        el("button", { class: "danger", onclick: () => api(`/operator/conversations/${c.id}/memories/${fact.id}`, { method: "DELETE" }).then(() => openConversation(c.id, false)) }, "Erase")));
    }
  } catch (err) {
    parts.push(el("div", { class: "muted" }, err.message));
  }
  parts.push(el("h3", {}, "Operator log"));
  for (const a of c.actions.slice(0, 30)) parts.push(el("div", { class: "actions-log" }, `${when(a.created_at)} ${a.operator} ${a.action}${a.detail ? `: ${a.detail}` : ""}`));
  return parts;
}

async function act(id, action) {
  for (const b of document.querySelectorAll("#conversation .top button")) b.disabled = true;
  try { await api(`/operator/conversations/${id}/${action}`, { method: "POST" }); }
  catch (err) { alert(err.message); }
  await openConversation(id, false);
  refreshList();
}

async function reply(id) {
  const box = $("#reply");
  const text = box.value.trim();
  if (!text) return;
  $("#send").disabled = true;
  try {
    await api(`/operator/conversations/${id}/reply`, { method: "POST", body: { text } });
    box.value = "";
  } catch (err) { alert(err.message); }
  $("#send").disabled = false;
  await openConversation(id, false);
}

async function outboxAct(row, action) {
  try { await api(`/operator/outbox/${row}/${action}`, { method: "POST" }); } catch (err) { alert(err.message); }
  if (state.open) await openConversation(state.open, false);
}

// -- start -------------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("#login").addEventListener("submit", (e) => { e.preventDefault(); $("#login-error").textContent = ""; signIn($("#token").value, $("#name").value.trim()); });
  $("#logout").addEventListener("click", () => signOut(""));
  let typing = null;
  $("#q").addEventListener("input", (e) => { state.q = e.target.value; clearTimeout(typing); typing = setTimeout(refreshList, 200); });
  $("#reveal").addEventListener("change", (e) => { state.reveal = e.target.checked; refreshList(); if (state.open) openConversation(state.open, false); });
  const saved = sessionStorage.getItem("whatsagent.token") || document.body.dataset.demoToken;
  if (saved) signIn(saved, sessionStorage.getItem("whatsagent.name") || (document.body.dataset.demoToken ? "demo operator" : "operator"));
});
