// The counsellor's page, live: a WebSocket to /staff/counselling/ws, or polling when a network
// blocks WebSockets. Without this script the page's forms do the same, one page at a time.
// Everything a person wrote is put into the page with textContent, never as markup.
(function () {
  "use strict";
  var desk = document.getElementById("desk");
  if (!desk) { return; }
  var data = desk.dataset;
  var chat = document.getElementById("chat");
  var held = chat ? chat.dataset.case : "";
  var lines = document.getElementById("lines");
  var errorBox = document.getElementById("live-error");
  var seen = {};
  var socket = null;
  var polling = null;

  function lastSeq() {
    var items = lines ? lines.querySelectorAll("li[data-seq]") : [];
    return items.length ? Number(items[items.length - 1].dataset.seq) : 0;
  }
  if (held) { seen[held] = lastSeq(); }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  function addLine(event) {
    if (!lines || event.case !== held || event.seq <= (seen[held] || 0)) { return; }
    seen[held] = event.seq;
    var item = document.createElement("li");
    item.className = "from-" + event.from;
    item.dataset.seq = String(event.seq);
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = data[event.from === "counsellor" ? "you" : event.from] || event.from;
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = event.text;
    item.appendChild(who);
    item.appendChild(document.createTextNode(" "));
    item.appendChild(text);
    lines.appendChild(item);
    lines.scrollTop = lines.scrollHeight;
  }

  function caseItem(event) {
    var item = document.createElement("li");
    item.dataset.case = event.case;
    var name = document.createElement(event.mine ? "a" : "span");
    name.textContent = data.open.replace("{handle}", event.case);
    if (event.mine) { name.href = "/staff/counselling?case=" + encodeURIComponent(event.case); }
    item.appendChild(name);
    if (event.urgent) {
      var flag = document.createElement("strong");
      flag.className = "urgent";
      flag.textContent = data.urgent;
      item.appendChild(document.createTextNode(" "));
      item.appendChild(flag);
    }
    var meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = event.commune || "";
    item.appendChild(meta);
    if (!event.mine) {
      var claim = document.createElement("button");
      claim.type = "button";
      claim.textContent = data.claim;
      claim.addEventListener("click", function () { act({ type: "claim", case: event.case }); });
      item.appendChild(claim);
    }
    return item;
  }

  function markUrgent(event) {
    // The open chat's heading carries the urgent flag too (a safety message during the chat).
    var title = document.getElementById("chat-title");
    if (!title || event.case !== held || !event.urgent || title.querySelector(".urgent")) { return; }
    var flag = document.createElement("strong");
    flag.className = "urgent";
    flag.textContent = data.urgent;
    title.appendChild(document.createTextNode(" "));
    title.appendChild(flag);
  }

  function updateCase(event) {
    var old = desk.querySelector('.cases li[data-case="' + event.case + '"]');
    if (old) { old.parentNode.removeChild(old); }
    if (event.case === held && (event.state === "closed" || !event.mine)) {
      window.location.href = "/staff/counselling";
      return;
    }
    markUrgent(event);
    if (event.state === "closed") { return; }
    var list = document.getElementById(event.mine ? "mine" : "queue");
    var empty = list.querySelector("li.hint");
    if (empty) { list.removeChild(empty); }
    list.appendChild(caseItem(event));
  }

  function handle(event) {
    if (event.type === "message") { addLine(event); }
    else if (event.type === "case") { updateCase(event); }
    else if (event.type === "error" || event.type === "notice") { showError(event.text || ""); }
    else if (event.type === "done") {
      showError("");
      if (event.action === "claim") { window.location.href = "/staff/counselling?case=" + encodeURIComponent(event.case); }
      if (event.action === "close" || event.action === "handover") { window.location.href = "/staff/counselling"; }
    }
  }

  function act(values) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(values));
      return;
    }
    var body = new URLSearchParams();
    body.set("csrf", data.token);
    Object.keys(values).forEach(function (key) { body.set(key, values[key]); });
    fetch("/staff/counselling/act", {
      method: "POST", body: body, credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (response) { return response.json(); }).then(handle).catch(function () { showError(data.offline); });
  }

  function seenParam() {
    return Object.keys(seen).map(function (h) { return h + ":" + seen[h]; }).join(",");
  }

  function fromPoll(events) {
    // A poll lists every case the page may show; one it no longer lists has ended or gone to
    // someone else (the socket says so with a "closed" event; a poll by leaving it out).
    var listed = {};
    events.forEach(function (event) { if (event.type === "case") { listed[event.case] = true; } });
    Array.prototype.forEach.call(desk.querySelectorAll(".cases li[data-case]"), function (item) {
      if (!listed[item.dataset.case]) { handle({ type: "case", case: item.dataset.case, state: "closed", mine: false }); }
    });
    if (held && !listed[held]) { handle({ type: "case", case: held, state: "closed", mine: false }); }
    events.forEach(handle);
  }

  function poll() {
    if (polling) { return; }
    polling = window.setInterval(function () {
      fetch("/staff/counselling/poll?seen=" + encodeURIComponent(seenParam()), { credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (body) { showError(""); fromPoll(body.events); })
        .catch(function () { showError(data.offline); });
    }, 3000);
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var opened = false;
    try {
      socket = new WebSocket(scheme + window.location.host + "/staff/counselling/ws?csrf=" + encodeURIComponent(data.token));
    } catch (e) { poll(); return; }
    var fallback = window.setTimeout(function () { if (!opened) { socket.close(); poll(); } }, 5000);
    socket.addEventListener("open", function () { opened = true; window.clearTimeout(fallback); showError(""); });
    socket.addEventListener("message", function (message) {
      try { handle(JSON.parse(message.data)); } catch (e) { /* a malformed event is ignored */ }
    });
    socket.addEventListener("close", function () {
      window.clearTimeout(fallback);
      socket = null;
      if (!opened) { poll(); } else { window.setTimeout(connect, 2000); }
    });
  }

  var form = document.getElementById("send-form");
  if (form) {
    form.addEventListener("submit", function (submit) {
      submit.preventDefault();
      var box = document.getElementById("text");
      var text = box.value.trim();
      if (!text) { return; }
      act({ type: "send", case: held, text: text });
      box.value = "";
      box.focus();
    });
  }
  Array.prototype.forEach.call(desk.querySelectorAll("#queue form.inline"), function (claimForm) {
    claimForm.addEventListener("submit", function (submit) {
      submit.preventDefault();
      act({ type: "claim", case: claimForm.querySelector('input[name="case"]').value });
    });
  });
  if (lines) { lines.scrollTop = lines.scrollHeight; }
  connect();
})();
