// synack chat in a browser: a WebSocket to the page's own server (docs/PROTOCOL.md §2.8).
// Everything a person sees is put on the page as text (textContent), never as HTML:
// a message that reads "<img onerror=...>" is shown as those characters.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { ws: null, nick: "", room: "", members: new Set(), ping: null, joined: false };

function setStatus(kind, text) {
  $("status").dataset.state = kind;
  $("status").textContent = text;
}

// One line of the log: parts are strings, or [className, text] for a styled span.
function show(op, parts, extra) {
  const li = document.createElement("li");
  li.className = op + (extra ? " " + extra : "");
  li.dataset.op = op;
  for (const part of parts) {
    if (typeof part === "string") {
      li.append(document.createTextNode(part));
    } else {
      const span = document.createElement("span");
      span.className = part[0];
      span.textContent = part[1];
      li.append(span);
    }
  }
  const log = $("log");
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.append(li);
  if (atEnd) log.scrollTop = log.scrollHeight;
  return li;
}

function drawMembers() {
  $("room-name").textContent = "#" + state.room;
  const ul = $("members");
  ul.replaceChildren();
  for (const nick of [...state.members].sort((a, b) => a.localeCompare(b))) {
    const li = document.createElement("li");
    li.textContent = nick;
    if (nick === state.nick) li.className = "me";
    ul.append(li);
  }
  $("where").textContent = state.nick + " in #" + state.room;
}

const text = (value) => (value === undefined || value === null ? "" : String(value));

// Each server event: how it is shown, and what it changes on the page.
const EVENTS = {
  welcome(e) {
    state.joined = true;
    state.nick = text(e.nick);
    state.room = text(e.room);
    state.members = new Set([state.nick, ...(e.members || []).map(text)]);
    $("login").hidden = true;
    $("chat").hidden = false;
    setStatus("joined", "connected");
    const others = (e.members || []).map(text).join(", ") || "nobody else yet";
    show("notice", [`* you are ${state.nick} in #${state.room} (here: ${others}); /help lists commands`]);
    drawMembers();
    // A request every third of the server's idle timeout keeps an idle tab in the chat.
    const every = Math.max(1, Number(e.idle_timeout) / 3 || 200) * 1000;
    state.ping = setInterval(() => send({ op: "ping" }), every);
    $("line").focus();
  },
  msg: (e) => show("msg", [["nick", `<${text(e.from)}>`], " " + text(e.text)]),
  private: (e) => show("private", [["nick", `*${text(e.from)}*`], " " + text(e.text)]),
  sent: (e) => show("sent", [`\u2192 ${text(e.to)}: ${text(e.text)}`]),
  joined(e) {
    if (e.nick === state.nick) {
      state.room = text(e.room);
      state.members = new Set([state.nick]);
      send({ op: "who" }); // who is in the room just entered
    } else if (e.room === state.room) {
      state.members.add(text(e.nick));
    }
    drawMembers();
    show("notice", [`* ${text(e.nick)} joined #${text(e.room)}`]);
  },
  left(e) {
    if (e.room === state.room) state.members.delete(text(e.nick));
    drawMembers();
    show("notice", [`* ${text(e.nick)} left #${text(e.room)}` + (e.reason ? ` (${text(e.reason)})` : "")]);
  },
  renamed(e) {
    if (e.old === state.nick) state.nick = text(e.new);
    if (e.room === state.room) {
      state.members.delete(text(e.old));
      state.members.add(text(e.new));
    }
    drawMembers();
    show("notice", [`* ${text(e.old)} is now known as ${text(e.new)}`]);
  },
  users(e) {
    const nicks = (e.nicks || []).map(text);
    if (e.room === state.room) {
      state.members = new Set(nicks);
      drawMembers();
    }
    show("users", [`* in #${text(e.room)}: ${nicks.join(", ") || "nobody"}`]);
  },
  rooms(e) {
    const list = (e.rooms || []).map((r) => `#${text(r.room)} (${text(r.count)})`);
    show("rooms", [`* rooms: ${list.join(", ") || "none"}`]);
  },
  help: (e) => show("help", [text(e.text)]),
  error(e) {
    if (!state.joined) $("login-error").textContent = text(e.message || e.code);
    else show("error", ["! " + text(e.message || e.code)]);
  },
  shutdown: (e) => show("notice", [`* server shutting down: ${text(e.message)}`]),
  bye: () => show("notice", ["* bye"]),
  pong: () => {},
};

function received(data) {
  for (const line of data.split("\n")) {
    if (!line) continue;
    let event;
    try {
      event = JSON.parse(line);
    } catch {
      continue;
    }
    const handle = EVENTS[event.op];
    if (handle) handle(event);
    else show("unknown", ["? " + line]);
  }
}

function send(request) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(request));
}

function connect(nick, room) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws`);
  state.ws = ws;
  state.joined = false;
  setStatus("connecting", "connecting…");
  ws.onopen = () => {
    const hello = { op: "hello", app: "chat", version: 1, nick };
    if (room) hello.room = room;
    ws.send(JSON.stringify(hello));
  };
  ws.onmessage = (m) => received(String(m.data));
  ws.onclose = () => {
    clearInterval(state.ping);
    if (state.ws !== ws) return;
    state.ws = null;
    if (state.joined) {
      show("notice", ["* disconnected; reload the page to join again"]);
      $("line").disabled = $("send").disabled = true;
    } else {
      $("join").disabled = false; // refused (nickname taken...): the form says why
    }
    setStatus("closed", "disconnected");
  };
}

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  $("join").disabled = true;
  connect($("nick").value.trim(), $("room").value.trim());
});

$("say").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const line = $("line").value;
  if (!line.trim()) return;
  send({ op: "line", text: line });
  // The server does not echo what one says: show it here, as a terminal shows typing.
  if (!line.startsWith("/") || line.startsWith("//")) {
    const said = line.startsWith("//") ? line.slice(1) : line;
    show("msg", [["nick", `<${state.nick}>`], " " + said], "mine");
  }
  $("line").value = "";
});
