// An Tâm web chat. Everything a person sees is inserted as text, never as HTML.
"use strict";
(() => {
  const KEY = "antam.session";
  const root = document.documentElement;
  const exitUrl = root.dataset.exitUrl;
  const log = document.getElementById("log");
  const form = document.getElementById("form");
  const input = document.getElementById("text");
  const remember = document.getElementById("remember");
  const offline = document.getElementById("offline");
  // The hotlines, rendered into the page by the server: shown when no reply comes in time
  // (the server, its database or the network may be stalled), without asking the server.
  const stalled = document.getElementById("stalled");
  const STALL_MS = 6000;
  let socket = null;
  let useHttp = false;
  const queue = [];
  let pending = 0;
  let stallTimer = null;

  function waitForReply() {
    clearTimeout(stallTimer);
    stallTimer = setTimeout(() => { stalled.hidden = false; }, STALL_MS);
  }

  function expectReply() {
    pending += 1;
    if (pending === 1) waitForReply();
  }

  function gotReply() {
    pending = Math.max(0, pending - 1);
    clearTimeout(stallTimer);
    stalled.hidden = true;
    if (pending > 0) waitForReply();
  }

  function randomId(bytes) {
    const data = new Uint8Array(bytes);
    crypto.getRandomValues(data);
    return btoa(String.fromCharCode(...data)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function session() {
    let id = localStorage.getItem(KEY) || sessionStorage.getItem(KEY);
    if (!id) {
      id = randomId(24);
      sessionStorage.setItem(KEY, id);
    }
    return id;
  }

  // Leave at once: empty the page, forget this browser's id, and replace the history entry
  // so that "Back" does not return here.
  function quickExit() {
    try { if (socket) socket.close(); } catch (e) { /* leaving anyway */ }
    log.replaceChildren();
    input.value = "";
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
    document.title = "";
    history.replaceState(null, "", "/");
    location.replace(exitUrl);
  }

  function addUser(text) {
    const bubble = document.createElement("div");
    bubble.className = "msg me";
    bubble.textContent = text;
    log.append(bubble);
    bubble.scrollIntoView({ block: "end" });
  }

  function addBot(reply) {
    const bubble = document.createElement("div");
    bubble.className = "msg bot";
    for (const paragraph of String(reply.text || "").split("\n\n")) {
      const p = document.createElement("p");
      p.textContent = paragraph;
      bubble.append(p);
    }
    if (Array.isArray(reply.buttons) && reply.buttons.length) {
      const choices = document.createElement("div");
      choices.className = "choices";
      for (const button of reply.buttons) {
        const element = document.createElement("button");
        element.type = "button";
        element.textContent = button.label;
        element.addEventListener("click", () => {
          if (button.payload === "x" || button.payload.endsWith("|x")) { quickExit(); return; }
          addUser(button.label);
          send({ payload: button.payload });
        });
        choices.append(element);
      }
      bubble.append(choices);
    }
    log.append(bubble);
    bubble.scrollIntoView({ block: "end" });
  }

  const shownIds = new Set();

  function render(answer) {
    // A message the bot starts carries its outbox id: one handed over twice is shown once.
    if (answer && answer.id) {
      if (shownIds.has(answer.id)) return;
      shownIds.add(answer.id);
    }
    for (const reply of (answer && answer.replies) || []) {
      if (reply.quick_exit) { quickExit(); return; }
      addBot(reply);
    }
  }

  function viaHttp(message) {
    fetch("/chat/send", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(message),
      credentials: "same-origin",
      cache: "no-store",
    }).then((response) => response.json()).then((answer) => { offline.hidden = true; gotReply(); render(answer); })
      .catch(() => { offline.hidden = false; });
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    try {
      socket = new WebSocket(`${scheme}://${location.host}/chat/ws`);
    } catch (e) {
      useHttp = true;
      return;
    }
    socket.addEventListener("open", () => { while (queue.length) socket.send(JSON.stringify(queue.shift())); });
    socket.addEventListener("message", (event) => { offline.hidden = true; gotReply(); render(JSON.parse(event.data)); });
    socket.addEventListener("close", () => {
      socket = null;
      useHttp = true; // keep going over plain HTTP
      while (queue.length) viaHttp(queue.shift());
    });
  }

  function send(message) {
    message.session = session();
    message.id = randomId(12);
    expectReply();
    if (!useHttp && socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
    else if (!useHttp && socket && socket.readyState === WebSocket.CONNECTING) queue.push(message);
    else viaHttp(message);
  }

  document.getElementById("exit").addEventListener("click", quickExit);
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") quickExit(); });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    addUser(text);
    send({ text });
  });

  remember.checked = localStorage.getItem(KEY) !== null;
  remember.addEventListener("change", () => {
    const id = session();
    if (remember.checked) { localStorage.setItem(KEY, id); sessionStorage.removeItem(KEY); }
    else { localStorage.removeItem(KEY); sessionStorage.setItem(KEY, id); }
  });

  // A peer educator's link (/?p=CODE): use it once, and keep it out of the address bar and history.
  const peer = new URLSearchParams(location.search).get("p");
  if (location.search) history.replaceState(null, "", "/");
  connect();
  send(peer ? { start: peer } : { text: "/start" });
})();
