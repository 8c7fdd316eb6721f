// An Tâm web chat. Everything a person sees is inserted as text, never as HTML.
"use strict";
(() => {
  const KEY = "antam.session";
  const root = document.documentElement;
  const exitUrl = root.dataset.exitUrl;
  const texts = { more: root.dataset.more, copy: root.dataset.copy, copied: root.dataset.copied };
  const shown = Number(root.dataset.buttonsShown) || 0;
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

  // Text with one phone number in it as a link that dials on tap.
  function withPhone(parent, text, number, dial) {
    const digits = String(dial || "").replace(/[^0-9+]/g, "");
    const at = number && digits ? text.indexOf(number) : -1;
    if (at < 0) { parent.append(text); return; }
    const link = document.createElement("a");
    link.href = `tel:${digits}`;
    link.textContent = number;
    parent.append(text.slice(0, at), link, text.slice(at + number.length));
  }

  function paragraph(className, text) {
    const p = document.createElement("p");
    if (className) p.className = className;
    p.textContent = text;
    return p;
  }

  function copyButton(code, value) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = texts.copy;
    button.addEventListener("click", () => {
      // Select the code too, so it can be copied by hand where the clipboard is not allowed.
      const range = document.createRange();
      range.selectNodeContents(code);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      const done = () => { button.textContent = texts.copied; };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(value).then(done, () => {});
      else if (document.execCommand && document.execCommand("copy")) done();
    });
    return button;
  }

  // One block of a reply, as the server described it: what it is, never markup.
  function block(item) {
    const text = String(item.text || "");
    if (item.kind === "title") {
      const heading = document.createElement("h2");
      heading.textContent = text;
      return heading;
    }
    if (item.kind === "urgent") {
      const p = paragraph("urgent", "");
      const strong = document.createElement("strong");
      strong.textContent = text;
      p.append(strong);
      return p;
    }
    if (item.kind === "code" && item.value && text.includes(item.value)) {
      const box = document.createElement("div");
      box.className = "code-block";
      const p = paragraph("", "");
      const code = document.createElement("code");
      code.className = "code";
      code.textContent = item.value;
      const at = text.indexOf(item.value);
      p.append(text.slice(0, at), code, text.slice(at + item.value.length));
      box.append(p, copyButton(code, item.value));
      return box;
    }
    if (item.kind === "phone") {
      const li = document.createElement("li");
      withPhone(li, text, item.value, item.dial);
      return li;
    }
    if (item.kind === "place" && Array.isArray(item.lines) && item.lines.length) {
      const card = document.createElement("div");
      card.className = "card";
      item.lines.forEach((line, index) => {
        const p = paragraph(index === 0 ? "card-name" : "card-line", "");
        withPhone(p, String(line), item.value, item.dial);
        card.append(p);
      });
      return card;
    }
    if (item.kind === "note") return paragraph("note", text);
    return paragraph("", text);
  }

  function body(bubble, reply) {
    if (!Array.isArray(reply.blocks) || !reply.blocks.length) {
      for (const text of String(reply.text || "").split("\n\n")) bubble.append(paragraph("", text));
      return;
    }
    let phones = null;
    for (const item of reply.blocks) {
      const element = block(item || {});
      if (element.tagName === "LI") {
        if (!phones) {
          phones = document.createElement("ul");
          phones.className = "phones";
          bubble.append(phones);
        }
        phones.append(element);
      } else {
        phones = null;
        bubble.append(element);
      }
    }
  }

  function choiceButton(button) {
    const element = document.createElement("button");
    element.type = "button";
    element.textContent = button.label;
    element.addEventListener("click", () => {
      if (button.payload === "x" || button.payload.endsWith("|x")) { quickExit(); return; }
      addUser(button.label);
      send({ payload: button.payload });
    });
    return element;
  }

  // At most ``shown`` buttons at first: the first ones, and "Xem thêm" for the rest.
  function choices(buttons) {
    const box = document.createElement("div");
    box.className = "choices";
    const elements = buttons.map(choiceButton);
    box.append(...elements);
    if (shown > 0 && elements.length > shown) {
      const rest = elements.slice(shown - 1);
      for (const element of rest) element.hidden = true;
      const more = document.createElement("button");
      more.type = "button";
      more.className = "more";
      more.textContent = texts.more;
      more.setAttribute("aria-expanded", "false");
      more.addEventListener("click", () => {
        for (const element of rest) element.hidden = false;
        more.remove();
        rest[0].focus();
      });
      box.append(more);
    }
    return box;
  }

  function addBot(reply) {
    const bubble = document.createElement("div");
    bubble.className = "msg bot";
    bubble.tabIndex = -1;
    body(bubble, reply);
    if (Array.isArray(reply.buttons) && reply.buttons.length) bubble.append(choices(reply.buttons));
    log.append(bubble);
    return bubble;
  }

  const shownIds = new Set();

  function render(answer) {
    // A message the bot starts carries its outbox id: one handed over twice is shown once.
    if (answer && answer.id) {
      if (shownIds.has(answer.id)) return;
      shownIds.add(answer.id);
    }
    // A button pressed in the chat: keyboard focus moves on to the answer, so Tab reaches its
    // buttons next (someone typing keeps the focus in the text box).
    const fromChoice = log.contains(document.activeElement);
    let first = null;
    for (const reply of (answer && answer.replies) || []) {
      if (reply.quick_exit) { quickExit(); return; }
      const bubble = addBot(reply);
      first = first || bubble;
    }
    if (!first) return;
    // The beginning of the answer in view, not its end: a long answer's first line is the one
    // to act on ("within 72 hours").
    first.scrollIntoView({ block: "start" });
    if (fromChoice) first.focus({ preventScroll: true });
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
