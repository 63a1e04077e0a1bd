// HelpCaster demo pages: the customer widget (customer.html) and the agent
// console (agent.html). Both speak signaling protocol v1 (see
// signaling/protocol/protocol.go and docs/protocol.md) over a WebSocket to
// /v1/signal, and use two RTCPeerConnections per call:
//   "pub": what this page sends; the page offers, the server answers.
//   "sub": what this page receives; the server offers (possibly several times),
//          the page answers.
// ICE candidates trickle both ways in "candidate" messages.
//
// All text from the network goes into the DOM with textContent, never as HTML.
// window.hc exposes the state for people debugging and for automated tests.
"use strict";

(() => {
  const PROTOCOL_VERSION = 1;
  const MAX_CHAT_CHARS = 4000; // protocol.MaxChatRunes
  const HANGUP_TIMEOUT_MS = 5000;
  const role = document.body.dataset.role === "agent" ? "agent" : "customer";
  // ?relay=1 forces media through TURN (iceTransportPolicy "relay"), to try
  // the TURN server from a network that would not need it.
  const relayOnly = new URLSearchParams(location.search).get("relay") === "1";
  // A token in the page URL (?token=...) is used as it is: whether the call
  // may be recorded is in it, so the page offers no choice then.
  const tokenFromURL = new URLSearchParams(location.search).get("token");

  const byId = (id) => document.getElementById(id);
  const ui = {
    status: byId("status"),
    queue: byId("queue-position"),
    recording: byId("recording"),
    recordToggle: byId("record-toggle"),
    recordConsent: byId("record-consent"),
    queueStats: byId("queue-stats"),
    notice: byId("notice"),
    join: byId("join"),
    available: byId("available"),
    away: byId("away"),
    agentState: byId("agent-state"),
    hangup: byId("hangup"),
    stage: byId("stage"),
    speaker: byId("speaker"),
    remoteVideo: byId("remote-video"),
    localVideo: byId("local-video"),
    playRemote: byId("play-remote"),
    chatLog: byId("chat-log"),
    chatForm: byId("chat-form"),
    chatInput: byId("chat-input"),
    chatSend: byId("chat-send"),
  };

  // State visible to people and tests. hc.pc.pub / hc.pc.sub are the peer
  // connections of the current (or last) call; they stay set, closed, after
  // the call ends until the next call replaces them. hc.pc.pub stays null
  // when the page has no camera/microphone (receive-only).
  const hc = {
    role,
    status: "idle", // "idle" | "queued" | "connected" | "ended" | "error"
    chat: [], // texts of the chat messages received from others, oldest first
    pc: { pub: null, sub: null },
    ws: null,
    session: null, // welcome.session
    limits: null, // welcome.limits
    queue: null, // customer: {position, length, wait} from the last "queued"
    resume: null, // customer: welcome.resume, to take back its place or call after a lost connection
    resumes: 0, // customer: reconnections made with the resume token
    agentState: null, // agent: state from the last "agent_state"
    queueStats: null, // agent: the last "queue_stats" summary
    peer: null, // assigned.peer: {role, name}
    recording: "off", // the call's recording as the server last said: "off" | "on" | "paused"
    recordingStopped: null, // reason of the "stopped" recording message of the current (or last) call
    room: null, // assigned.room
    speaker: "", // who is speaking in the call, from "speaker": "you", "peer" or "" (nobody)
    media: "none", // "none" | "pending" | "ok" | "audio-only" | "refused" | "not-found" | "unavailable" | "error"
    localStream: null,
    remoteStream: null,
    endedReason: null, // reason of the last "ended"
    lastError: null, // last "error" from the server: {code, message, ref}
    closed: null, // last WebSocket close: {code, reason}
  };
  window.hc = hc;

  let ws = null; // the current WebSocket, or null
  let welcomed = false; // got "welcome" on ws
  let starting = false; // fetching a token / connecting
  let byeReceived = false;
  let call = null; // current call: {sub: Link, pub: Link|null}
  let mediaPromise = null; // resolves to the local MediaStream or null
  let mediaGen = 0; // bumped by stopMedia so late getUserMedia results are dropped
  let agentWants = "available"; // agent: what to tell the server after welcome
  let awaitingAgentState = false;
  let hangupTimer = 0;
  let resumeTimer = 0; // pending reconnection with the resume token
  let resumeTries = 0; // failed reconnections in a row
  const pendingEcho = []; // own chat messages the server may echo back: {text, entry}
  let recordingAsk = null; // agent: the pause or resume the server has not answered: {id, state}
  let recordingAsks = 0; // agent: numbers the ids of those requests

  // ---- small UI helpers ----

  function setState(s) {
    hc.status = s;
    document.body.dataset.status = s;
    updateControls();
  }

  function setStatus(text, kind) {
    ui.status.textContent = text;
    ui.status.dataset.kind = kind || "info";
  }

  function setNotice(text) {
    if (!ui.notice) return;
    ui.notice.textContent = text || "";
    ui.notice.hidden = !text;
  }

  // formatWait words an estimated wait in seconds (already rounded by the
  // server: 15 s steps below a minute, minutes, then 5 minutes).
  function formatWait(seconds) {
    if (seconds < 60) return "under a minute";
    const minutes = Math.round(seconds / 60);
    return "about " + minutes + (minutes === 1 ? " minute" : " minutes");
  }

  function setQueueText(text) {
    if (!ui.queue) return;
    ui.queue.textContent = text || "";
    ui.queue.hidden = !text;
  }

  function wsActive() {
    return ws !== null && (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN);
  }

  function wsOpen() {
    return ws !== null && ws.readyState === WebSocket.OPEN;
  }

  function updateControls() {
    const online = wsOpen() && welcomed;
    const inCall = online && call !== null;
    if (ui.join) {
      ui.join.disabled = starting || (wsActive() && hc.status !== "ended");
      ui.join.textContent = hc.status === "ended" || hc.status === "error" ? "Ask for help again" : "Ask for help";
    }
    if (ui.available) {
      const s = hc.agentState;
      ui.available.disabled = starting || awaitingAgentState || (wsActive() && (!online || s === "available" || s === "busy"));
    }
    if (ui.away) {
      const s = hc.agentState;
      ui.away.disabled = !online || awaitingAgentState || !(s === "available" || s === "busy");
    }
    if (ui.hangup) {
      const queued = role === "customer" && hc.status === "queued";
      ui.hangup.disabled = hangupTimer !== 0 || !(inCall || (online && queued));
      ui.hangup.textContent = queued && !call ? "Leave queue" : "Hang up";
    }
    if (ui.recordConsent) {
      ui.recordConsent.disabled = ui.join ? ui.join.disabled : false;
    }
    if (ui.recordToggle) {
      const recorded = inCall && (hc.recording === "on" || hc.recording === "paused");
      ui.recordToggle.hidden = !recorded;
      ui.recordToggle.disabled = !recorded || recordingAsk !== null;
      if (recordingAsk) ui.recordToggle.textContent = recordingAsk.state === "paused" ? "Pausing…" : "Resuming…";
      else ui.recordToggle.textContent = hc.recording === "paused" ? "Resume recording" : "Pause recording";
    }
    ui.chatInput.disabled = !inCall;
    ui.chatSend.disabled = !inCall;
  }

  // showRecording shows whether the call is recorded: state is "on",
  // "paused" or "off" (not recorded, or no longer).
  function showRecording(state) {
    hc.recording = state;
    if (ui.recording) {
      let text = "";
      if (state === "on") text = "This call is recorded.";
      else if (state === "paused") text = "Recording paused: this part of the call is not recorded.";
      ui.recording.textContent = text;
      ui.recording.dataset.state = state;
      ui.recording.hidden = !text;
    }
    updateControls();
  }

  // sentence ends text with a full stop unless it already ends a sentence.
  function sentence(text) {
    return /[.!?…)]$/.test(text) ? text : text + ".";
  }

  function roleLabel(r) {
    if (r === "agent") return "Agent";
    if (r === "customer") return "Customer";
    if (r) return r;
    return "Someone";
  }

  function peerName(peer) {
    if (peer && peer.name) return peer.name;
    if (peer && peer.role === "agent") return "an agent";
    if (peer && peer.role === "customer") return "a customer";
    return "the other side";
  }

  function formatTime(ms) {
    const d = new Date(ms);
    if (Number.isNaN(d.getTime())) return { iso: "", text: "" };
    return { iso: d.toISOString(), text: d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) };
  }

  function appendChat(who, ts, text, kind) {
    const li = document.createElement("li");
    li.className = "chat-" + kind;
    const meta = document.createElement("div");
    meta.className = "chat-meta";
    const name = document.createElement("span");
    name.className = "chat-who";
    name.textContent = who;
    meta.appendChild(name);
    const t = formatTime(ts);
    if (t.text) {
      const time = document.createElement("time");
      time.dateTime = t.iso;
      time.textContent = t.text;
      meta.appendChild(time);
    }
    li.appendChild(meta);
    const body = document.createElement("p");
    body.className = "chat-text";
    body.textContent = text;
    li.appendChild(body);
    ui.chatLog.appendChild(li);
    ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
    return li;
  }

  function appendChatNote(text) {
    const li = document.createElement("li");
    li.className = "chat-note";
    li.textContent = text;
    ui.chatLog.appendChild(li);
    ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
  }

  // ---- token and WebSocket ----

  async function getToken() {
    if (tokenFromURL) return tokenFromURL;
    let url = "token?role=" + encodeURIComponent(role);
    // The demo customer's token says whether it agrees to be recorded.
    if (ui.recordConsent && ui.recordConsent.checked) url += "&consent=1";
    let res;
    try {
      // Relative to the page: /demo/token when the pages are under /demo/.
      res = await fetch(url, {
        cache: "no-store",
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
    } catch (err) {
      throw new Error("Could not reach the server for a demo token: " + err.message);
    }
    if (res.status === 404) {
      throw new Error("no demo token: start the server with --dev, or pass ?token=... in the page URL");
    }
    if (!res.ok) {
      throw new Error("Could not get a demo token: HTTP " + res.status);
    }
    let body;
    try {
      body = await res.json();
    } catch (err) {
      throw new Error("Could not get a demo token: the reply is not JSON");
    }
    if (!body || typeof body.token !== "string" || body.token === "") {
      throw new Error("Could not get a demo token: the reply has no token");
    }
    return body.token;
  }

  function signalURL() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + "/v1/signal";
  }

  // Messages about a call. The page sends none once its call has ended (it
  // saw "ended", or the call was replaced): the server would refuse a late
  // one with invalid_state. A customer's hangup also leaves the queue.
  const callTypes = new Set(["offer", "answer", "candidate", "chat", "quality", "hangup", "recording"]);

  function send(msg) {
    if (callTypes.has(msg.type) && !call && !(msg.type === "hangup" && hc.status === "queued")) {
      console.warn("helpcaster: not in a call; dropping", msg.type);
      return false;
    }
    if (!wsOpen()) {
      console.warn("helpcaster: not connected; dropping", msg.type);
      return false;
    }
    ws.send(JSON.stringify(Object.assign({ v: PROTOCOL_VERSION }, msg)));
    return true;
  }

  // dropSocket forgets the current socket without reporting its close.
  function dropSocket(reason) {
    const old = ws;
    ws = null;
    hc.ws = null;
    welcomed = false;
    if (old && old.readyState <= WebSocket.OPEN) old.close(1000, reason);
  }

  async function startSession() {
    if (starting) return;
    starting = true;
    if (resumeTimer) clearTimeout(resumeTimer);
    resumeTimer = 0;
    resumeTries = 0;
    hc.resume = null;
    dropSocket("starting over");
    endCall();
    byeReceived = false;
    hc.session = null;
    hc.queue = null;
    hc.peer = null;
    hc.room = null;
    hc.endedReason = null;
    hc.lastError = null;
    hc.closed = null;
    setQueueText("");
    setNotice("");
    setState("idle");
    setStatus("Getting ready…");
    // Ask for the camera now, so that the permission prompt shows while we
    // wait rather than when the call starts.
    ensureMedia();
    let token;
    try {
      token = await getToken();
    } catch (err) {
      starting = false;
      stopMedia();
      setState("error");
      setStatus(err.message, "error");
      return;
    }
    starting = false;
    connect(token);
  }

  // connect opens the signaling socket and sends join with token, or
  // resume with a resume token when resume is true.
  function connect(token, resume) {
    let s;
    try {
      s = new WebSocket(signalURL());
    } catch (err) {
      setState("error");
      setStatus("Could not open the connection to the server: " + err.message, "error");
      return;
    }
    ws = s;
    hc.ws = s;
    welcomed = false;
    setStatus("Connecting…");
    updateControls();

    s.addEventListener("open", () => {
      if (s !== ws) return;
      setStatus(resume ? "Reconnecting…" : "Joining…");
      send({ type: resume ? "resume" : "join", token });
      updateControls();
    });
    s.addEventListener("message", (ev) => {
      if (s !== ws) return;
      if (typeof ev.data !== "string") return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (err) {
        console.warn("helpcaster: server sent invalid JSON", err);
        return;
      }
      if (!msg || typeof msg !== "object" || msg.v !== PROTOCOL_VERSION) {
        console.warn("helpcaster: ignoring message with unknown version", msg && msg.v);
        return;
      }
      try {
        handle(msg);
      } catch (err) {
        console.error("helpcaster: handling", msg.type, err);
      }
    });
    s.addEventListener("close", (ev) => {
      if (s !== ws) return;
      onSocketClosed(ev);
    });
  }

  const closeCodes = {
    1000: "closed normally",
    1001: "the server is going away",
    1006: "connection lost (is the server running?)",
    1008: "refused by the server (policy)",
    1009: "a message was too large",
    1011: "the server had an error",
    1012: "the server is restarting",
    1013: "the server is busy; try again later",
  };

  // The connection dropped (not a normal close, not a shutdown): a customer
  // reconnects with its resume token and keeps its place or its call. The
  // server keeps them for a minute by default; retries back off up to 8 s.
  function tryResume(ev) {
    if (role !== "customer" || !hc.resume || byeReceived || ev.code === 1000 || ev.code === 1008) return false;
    if (hc.status !== "queued" && hc.status !== "connected") return false;
    if (resumeTries >= 8) return false;
    const delay = Math.min(1000 * 2 ** resumeTries, 8000);
    resumeTries++;
    endCall();
    setStatus("Connection lost; reconnecting…", "info");
    resumeTimer = setTimeout(() => {
      resumeTimer = 0;
      hc.resumes++;
      connect(hc.resume, true);
    }, delay);
    return true;
  }

  function onSocketClosed(ev) {
    if (tryResume(ev)) {
      ws = null;
      hc.ws = null;
      welcomed = false;
      return;
    }
    ws = null;
    hc.ws = null;
    welcomed = false;
    awaitingAgentState = false;
    hc.closed = { code: ev.code, reason: ev.reason };
    const wasEnded = hc.status === "ended";
    // Keep a fatal error's explanation (e.g. bad_token) in front of the close.
    const before = hc.status === "error" ? sentence(ui.status.textContent) + " " : "";
    endCall();
    setQueueText("");
    if (role === "agent") showAgentState(null);
    const why = ev.reason ? "“" + ev.reason + "”" : closeCodes[ev.code] || "closed";
    let text = "Disconnected from the server: " + why + " (code " + ev.code + ").";
    if (byeReceived) text = "Server is shutting down. " + text;
    if (wasEnded) {
      updateControls();
      if (ev.code !== 1000) setStatus(ui.status.textContent + " " + text, "info");
      return;
    }
    setState("error");
    setStatus(before + text, "error");
  }

  // ---- protocol ----

  // Errors after which this connection is of no use.
  const fatalCodes = new Set(["bad_token", "bad_resume", "token_expired", "unknown_org", "forbidden_origin", "unsupported_version", "queue_full"]);

  const endedReasons = {
    hangup: "You hung up.",
    peer_left: "The other side hung up or went away.",
    shutdown: "The server is shutting down.",
    failed: "The media connection could not be set up.",
  };

  const agentStates = {
    available: ["available", "You are available: waiting for a customer."],
    away: ["away", "You are away: you will not get new customers."],
    busy: ["busy", "You are in a call."],
  };

  function handle(msg) {
    switch (msg.type) {
      case "welcome":
        welcomed = true;
        resumeTries = 0;
        hc.session = msg.session || null;
        if (msg.resume) hc.resume = msg.resume;
        hc.limits = msg.limits || null;
        if (role === "agent") {
          setStatus("Connected.");
          awaitingAgentState = true;
          send({ type: agentWants });
        } else {
          setStatus("Connected. Waiting for your place in the queue…");
        }
        updateControls();
        break;

      case "queued": {
        const position = Number(msg.position) || 0;
        const length = Number(msg.length) || 0;
        const wait = Number(msg.wait) || 0; // estimated seconds; absent when unknown
        hc.queue = { position, length, wait };
        if (hc.status !== "connected") {
          setState("queued");
          setStatus("Waiting for an agent…");
        }
        let text = position > 0 ? "You are number " + position + " in the queue" : "You are in the queue";
        if (length > 0) text += " (" + length + " waiting)";
        text += wait > 0 ? ". Expected wait: " + formatWait(wait) + "." : ". Waiting for an agent to become free.";
        setQueueText(text);
        break;
      }

      case "queue_stats": {
        const st = msg.stats || {};
        hc.queueStats = st;
        if (ui.queueStats) {
          let text = "Queue " + (msg.queue || "") + ": " + (st.waiting || 0) + " waiting";
          if (st.waiting) text += ", longest " + formatWait(st.longestWait || 0).replace("about ", "");
          text += "; agents " + (st.available || 0) + " available, " + (st.busy || 0) + " busy, " + (st.away || 0) + " away";
          if (st.answered) text += "; last hour: " + st.answered + " answered, average wait " + formatWait(st.avgWait || 0).replace("about ", "");
          ui.queueStats.textContent = text + ".";
          ui.queueStats.hidden = false;
        }
        break;
      }

      case "agent_state":
        awaitingAgentState = false;
        showAgentState(msg.state || null);
        break;

      case "assigned":
        hc.peer = msg.peer || null;
        hc.room = msg.room || null;
        hc.endedReason = null;
        setQueueText("");
        startCall(msg);
        setState("connected");
        setStatus("Connected to " + peerName(hc.peer));
        appendChatNote("Call with " + peerName(hc.peer) + " started " + formatTime(Date.now()).text);
        break;

      case "offer":
        onRemoteOffer(msg);
        break;

      case "answer":
        onRemoteAnswer(msg);
        break;

      case "candidate":
        onRemoteCandidate(msg);
        break;

      case "chat":
        onChat(msg);
        break;

      case "layers":
        applyLayers(msg);
        break;

      case "recording":
        onRecording(msg);
        break;

      case "speaker":
        // Ignore a late one after the call ended.
        if (call) showSpeaker(!msg.role ? "" : msg.role === role ? "you" : "peer");
        break;

      case "ended": {
        const reason = msg.reason || "unknown";
        hc.endedReason = reason;
        const wasQueued = hc.status === "queued" && !call;
        endCall();
        setQueueText("");
        setState("ended");
        let text = "Call ended (" + reason + ").";
        if (wasQueued && reason === "hangup") text += " You left the queue.";
        else if (endedReasons[reason]) text += " " + endedReasons[reason];
        setStatus(text);
        if (role === "agent" && hc.agentState) showAgentState(hc.agentState);
        break;
      }

      case "error": {
        const code = msg.code || "error";
        hc.lastError = { code, message: msg.message || "", ref: msg.ref || "" };
        if (recordingAsk && msg.ref === recordingAsk.id) {
          recordingRefused(recordingAsk, msg);
          break;
        }
        awaitingAgentState = false;
        setStatus(sentence("Error " + code + ": " + (msg.message || "no details")), "error");
        if (fatalCodes.has(code) || !welcomed) {
          setState("error");
        } else {
          updateControls();
        }
        break;
      }

      case "bye":
        byeReceived = true;
        setStatus("Server is shutting down" + (msg.reason && msg.reason !== "shutdown" ? " (" + msg.reason + ")" : ""), "error");
        break;

      default:
        console.warn("helpcaster: ignoring message type", msg.type);
    }
  }

  // onRecording follows the call's recording as the server states it: the
  // indicator shows from "started" or "resumed" until "paused", "stopped"
  // or the end of the call, and "paused" shows while paused.
  function onRecording(msg) {
    if (!call || (msg.room && hc.room && msg.room !== hc.room)) return;
    recordingAsk = null;
    // A refusal shown before is out of date now.
    if (ui.notice && ["pause", "resume"].some((w) => ui.notice.textContent.startsWith(refusal(w)))) setNotice("");
    switch (msg.state) {
      case "started":
      case "resumed":
        hc.recordingStopped = null;
        showRecording("on");
        break;
      case "paused":
        showRecording("paused");
        break;
      case "stopped": {
        const was = hc.recording;
        hc.recordingStopped = msg.reason || "unknown";
        showRecording("off");
        if (was !== "off") setNotice("Recording stopped (" + hc.recordingStopped + "): the rest of this call is not recorded.");
        break;
      }
      default:
        console.warn("helpcaster: ignoring recording state", msg.state);
        updateControls();
    }
  }

  // askRecording asks the server to pause or resume the recording (agent).
  // The page shows the new state only when the server confirms it.
  function askRecording() {
    if (recordingAsk || !call) return;
    const state = hc.recording === "on" ? "paused" : hc.recording === "paused" ? "resumed" : "";
    if (!state) return;
    recordingAsks++;
    const ask = { id: "rec-" + recordingAsks, state };
    const msg = { type: "recording", state, id: ask.id };
    if (hc.room) msg.room = hc.room;
    if (!send(msg)) return;
    recordingAsk = ask;
    updateControls();
  }

  // refusal begins the notice that the server refused to pause or resume.
  const refusal = (what) => "Could not " + what + " the recording: ";

  function recordingRefused(ask, msg) {
    recordingAsk = null;
    setNotice(sentence(refusal(ask.state === "paused" ? "pause" : "resume") + (msg.message || msg.code || "refused")));
    updateControls();
  }

  function showAgentState(state) {
    hc.agentState = state;
    const known = agentStates[state];
    if (ui.agentState) ui.agentState.textContent = state ? (known ? known[0] : state) : "offline";
    if (state && !call && hc.status !== "ended" && hc.status !== "error") {
      setStatus(known ? known[1] : "State: " + state);
    }
    updateControls();
  }

  // showSpeaker marks who is speaking: "you", "peer" or "" (nobody). The
  // stage is outlined while the other side speaks, the preview while you do.
  function showSpeaker(who) {
    hc.speaker = who;
    if (ui.stage) ui.stage.dataset.speaker = who;
    if (!ui.speaker) return;
    let text = "";
    if (who === "you") {
      text = "You are speaking";
    } else if (who === "peer") {
      const name = peerName(hc.peer);
      text = name.charAt(0).toUpperCase() + name.slice(1) + " is speaking";
    }
    ui.speaker.textContent = text;
    ui.speaker.hidden = !text;
  }

  function onChat(msg) {
    if (typeof msg.text !== "string" || msg.text === "") return;
    const from = msg.from || {};
    const ts = Number(msg.ts) || Date.now();
    if (from.role === role) {
      // The server may echo our own messages back: match them to what we
      // showed when sending instead of showing them twice.
      const i = pendingEcho.findIndex((p) => p.text === msg.text);
      if (i >= 0) {
        const [p] = pendingEcho.splice(i, 1);
        p.entry.classList.add("chat-confirmed");
        return;
      }
    }
    hc.chat.push(msg.text);
    appendChat(from.name || roleLabel(from.role), ts, msg.text, "theirs");
  }

  function sendChat(ev) {
    ev.preventDefault();
    const text = ui.chatInput.value.trim();
    if (text === "") return;
    if (Array.from(text).length > MAX_CHAT_CHARS) {
      setNotice("That message is too long: at most " + MAX_CHAT_CHARS + " characters.");
      return;
    }
    if (!call || !send({ type: "chat", text })) return;
    const entry = appendChat("You", Date.now(), text, "mine");
    pendingEcho.push({ text, entry });
    if (pendingEcho.length > 50) pendingEcho.shift();
    ui.chatInput.value = "";
    ui.chatInput.focus();
  }

  function hangUp() {
    if (!send({ type: "hangup" })) return;
    setStatus(call ? "Hanging up…" : "Leaving the queue…");
    // The server answers with "ended"; if it does not, end locally.
    hangupTimer = setTimeout(() => {
      hangupTimer = 0;
      if (hc.status === "connected" || hc.status === "queued" || call) {
        endCall();
        setQueueText("");
        hc.endedReason = "hangup";
        setState("ended");
        setStatus("Call ended (hangup). " + endedReasons.hangup + " The server did not confirm.");
      }
      updateControls();
    }, HANGUP_TIMEOUT_MS);
    updateControls();
  }

  // ---- local media ----

  function ensureMedia() {
    if (!mediaPromise) mediaPromise = acquireMedia();
    return mediaPromise;
  }

  function stopMedia() {
    mediaGen++;
    mediaPromise = null;
    if (hc.localStream) {
      for (const t of hc.localStream.getTracks()) t.stop();
    }
    hc.localStream = null;
    ui.localVideo.srcObject = null;
    // Keep a refusal or failure visible; forget a stream we no longer have.
    if (hc.media === "ok" || hc.media === "audio-only" || hc.media === "pending") hc.media = "none";
  }

  const receiveOnly = " Continuing receive-only: you can see and hear the other side, but they cannot see or hear you.";

  async function acquireMedia() {
    const gen = mediaGen;
    const md = navigator.mediaDevices;
    if (!md || !md.getUserMedia) {
      hc.media = "unavailable";
      setNotice("Camera and microphone are not available on this page (it needs https or localhost)." + receiveOnly);
      return null;
    }
    hc.media = "pending";
    let stream = null;
    let failure = null;
    let audioOnly = false;
    try {
      stream = await md.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    } catch (err) {
      failure = err;
      if (err && (err.name === "NotFoundError" || err.name === "OverconstrainedError")) {
        // Perhaps only the camera is missing: try the microphone alone.
        try {
          stream = await md.getUserMedia({ audio: true });
          audioOnly = true;
        } catch (_) {
          stream = null;
        }
      }
    }
    if (gen !== mediaGen) {
      // The call or request ended while we waited.
      if (stream) for (const t of stream.getTracks()) t.stop();
      return null;
    }
    if (!stream) {
      reportMediaError(failure);
      return null;
    }
    if (audioOnly) {
      hc.media = "audio-only";
      setNotice("No camera was found: sending sound only.");
    } else {
      hc.media = "ok";
    }
    hc.localStream = stream;
    ui.localVideo.muted = true;
    ui.localVideo.srcObject = stream;
    ui.localVideo.play().catch(() => {});
    return stream;
  }

  function reportMediaError(err) {
    const name = (err && err.name) || "Error";
    if (name === "NotAllowedError" || name === "SecurityError") {
      hc.media = "refused";
      setNotice("Camera and microphone access was refused. To be seen and heard, allow them in the browser's site settings and try again." + receiveOnly);
    } else if (name === "NotFoundError" || name === "OverconstrainedError") {
      hc.media = "not-found";
      setNotice("No camera or microphone was found. Connect one and try again." + receiveOnly);
    } else if (name === "NotReadableError" || name === "AbortError") {
      hc.media = "error";
      setNotice("The camera or microphone could not be started; another application may be using it." + receiveOnly);
    } else {
      hc.media = "error";
      setNotice("The camera or microphone failed (" + name + ")." + receiveOnly);
    }
  }

  // ---- peer connections ----

  // Link is one RTCPeerConnection with its signaling work queue: offers,
  // answers and remote candidates are applied strictly in arrival order, and
  // candidates that arrive before the remote description wait for it.
  class Link {
    constructor(name, iceServers) {
      this.name = name;
      this.pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: relayOnly ? "relay" : "all" });
      this.pending = [];
      this.work = Promise.resolve();
      this.closed = false;
      this.failed = false;
      this.pc.addEventListener("icecandidate", (e) => this.onLocalCandidate(e));
      this.pc.addEventListener("connectionstatechange", () => this.onState(this.pc.connectionState));
      // Fallback for browsers without connectionState.
      this.pc.addEventListener("iceconnectionstatechange", () => {
        if (this.pc.connectionState === undefined) this.onState(this.pc.iceConnectionState);
      });
    }

    // send sends a message about this connection unless it is closed (its
    // call ended or was replaced): work queued before then sends nothing.
    send(msg) {
      return !this.closed && send(Object.assign({ pc: this.name }, msg));
    }

    run(what, fn) {
      this.work = this.work
        .then(() => (this.closed ? undefined : fn()))
        .catch((err) => {
          if (!this.closed) negotiationFailed(this.name, what, err);
        });
      return this.work;
    }

    onLocalCandidate(e) {
      const c = e.candidate;
      if (!c || !c.candidate) return; // end of candidates: send nothing
      const init = { candidate: c.candidate };
      if (c.sdpMid !== null && c.sdpMid !== undefined) init.sdpMid = c.sdpMid;
      if (c.sdpMLineIndex !== null && c.sdpMLineIndex !== undefined) init.sdpMLineIndex = c.sdpMLineIndex;
      if (c.usernameFragment) init.usernameFragment = c.usernameFragment;
      this.send({ type: "candidate", candidate: init });
    }

    async setRemote(desc) {
      await this.pc.setRemoteDescription(desc);
      const waiting = this.pending;
      this.pending = [];
      for (const c of waiting) await this.applyCandidate(c);
    }

    addRemoteCandidate(c) {
      this.run("candidate", async () => {
        if (!this.pc.remoteDescription) {
          this.pending.push(c);
          return;
        }
        await this.applyCandidate(c);
      });
    }

    async applyCandidate(c) {
      try {
        await this.pc.addIceCandidate(c);
      } catch (err) {
        // One bad candidate is not fatal; the others may work.
        console.warn("helpcaster: " + this.name + ": candidate not applied:", err);
      }
    }

    onState(state) {
      if (this.closed) return;
      if (state === "failed") {
        if (this.failed) return;
        this.failed = true;
        setState("error");
        setStatus("Media connection failed (" + this.name + ")", "error");
        setNotice(
          "Media connection failed: the browser could not exchange audio and video with the server. " +
            "A firewall or VPN may block UDP, or the server may need a TURN relay (check its ICE servers). Hang up and try again.",
        );
      } else if (state === "disconnected") {
        setNotice("The media connection was interrupted; trying to recover…");
      } else if (state === "connected" && ui.notice && ui.notice.textContent.startsWith("The media connection was interrupted")) {
        setNotice("");
      }
    }

    close() {
      this.closed = true;
      this.pending = [];
      try {
        this.pc.close();
      } catch (_) {
        // already closed
      }
    }
  }

  function negotiationFailed(name, what, err) {
    console.error("helpcaster: " + name + " " + what + " failed:", err);
    setStatus("Media setup failed on " + name + " (" + what + "): " + ((err && err.message) || err), "error");
  }

  function startCall(msg) {
    // Keep the local stream: it may have been acquired while queued.
    closeLinks();
    hc.recordingStopped = null;
    const iceServers = Array.isArray(msg.iceServers) ? msg.iceServers : [];
    const c = { sub: new Link("sub", iceServers), pub: null };
    call = c;
    hc.pc.sub = c.sub.pc;
    hc.pc.pub = null;
    hc.remoteStream = new MediaStream();
    c.sub.pc.addEventListener("track", (e) => {
      if (call === c) onRemoteTrack(e);
    });

    ensureMedia().then((stream) => {
      if (call !== c) return;
      if (!stream) return; // receive-only: no pub offer
      const pub = new Link("pub", iceServers);
      c.pub = pub;
      hc.pc.pub = pub.pc;
      pub.run("offer", async () => {
        for (const track of stream.getTracks()) {
          const init = { direction: "sendonly", streams: [stream] };
          // Video goes out as three simulcast layers (a quarter, half and
          // full size); the server forwards each viewer the one that suits
          // it and switches only on keyframes.
          if (track.kind === "video") init.sendEncodings = SIMULCAST;
          pub.pc.addTransceiver(track, init);
        }
        const offer = await pub.pc.createOffer();
        await pub.pc.setLocalDescription(offer);
        pub.send({ type: "offer", sdp: pub.pc.localDescription.sdp });
      });
    });
  }

  // endCall closes both peer connections, stops the camera and microphone
  // and clears the remote video.
  function endCall() {
    if (hangupTimer) {
      clearTimeout(hangupTimer);
      hangupTimer = 0;
    }
    closeLinks();
    stopMedia();
    recordingAsk = null;
    showRecording("off");
  }

  function closeLinks() {
    const c = call;
    call = null;
    if (c) {
      if (c.pub) c.pub.close();
      c.sub.close();
    }
    if (hc.remoteStream) {
      for (const t of hc.remoteStream.getTracks()) hc.remoteStream.removeTrack(t);
    }
    hc.remoteStream = null;
    ui.remoteVideo.srcObject = null;
    if (ui.playRemote) ui.playRemote.hidden = true;
    pendingEcho.length = 0;
    showSpeaker("");
  }

  function onRemoteOffer(msg) {
    if (!call || msg.pc !== "sub" || typeof msg.sdp !== "string") {
      console.warn("helpcaster: ignoring offer for pc", msg.pc);
      return;
    }
    const sub = call.sub;
    sub.run("answer", async () => {
      await sub.setRemote({ type: "offer", sdp: msg.sdp });
      const answer = await sub.pc.createAnswer();
      await sub.pc.setLocalDescription(answer);
      sub.send({ type: "answer", sdp: sub.pc.localDescription.sdp });
    });
  }

  function onRemoteAnswer(msg) {
    const pub = call && call.pub;
    if (!pub || msg.pc !== "pub" || typeof msg.sdp !== "string") {
      console.warn("helpcaster: ignoring answer for pc", msg.pc);
      return;
    }
    pub.run("remote answer", () => pub.setRemote({ type: "answer", sdp: msg.sdp }));
  }

  function onRemoteCandidate(msg) {
    if (!call) return;
    const link = msg.pc === "pub" ? call.pub : msg.pc === "sub" ? call.sub : null;
    if (!link) return;
    const c = msg.candidate;
    if (!c || typeof c.candidate !== "string" || c.candidate === "") return; // end of candidates
    const init = { candidate: c.candidate };
    if (c.sdpMid !== undefined && c.sdpMid !== null) init.sdpMid = c.sdpMid;
    if (c.sdpMLineIndex !== undefined && c.sdpMLineIndex !== null) init.sdpMLineIndex = c.sdpMLineIndex;
    if (init.sdpMid === undefined && init.sdpMLineIndex === undefined) init.sdpMLineIndex = 0;
    if (c.usernameFragment) init.usernameFragment = c.usernameFragment;
    link.addRemoteCandidate(init);
  }

  // senderFor finds the sender of the track the server names in "layers":
  // the track id of an a=msid line in our offer. Chromium writes the
  // MediaStreamTrack's id there, Firefox an id of its own, so the offer's
  // media section (its mid) leads to the transceiver.
  function senderFor(pc, trackId) {
    const desc = pc.localDescription;
    const sections = desc ? desc.sdp.split(/\r?\nm=/).slice(1) : [];
    for (const section of sections) {
      const ids = [...section.matchAll(/^a=msid:\S+ (\S+)\s*$/gm)].map((m) => m[1]);
      const mid = /^a=mid:(\S+)\s*$/m.exec(section);
      if (!mid || !ids.includes(trackId)) continue;
      const tr = pc.getTransceivers().find((t) => t.mid === mid[1]);
      if (tr && tr.sender.track) return tr.sender;
    }
    return pc.getSenders().find((s) => s.track && s.track.id === trackId) || null;
  }

  // applyLayers pauses and resumes simulcast encodings of one of our tracks
  // as the server asks (dynacast): nobody is watching the paused ones.
  async function applyLayers(msg) {
    const pc = call && call.pub && call.pub.pc;
    if (!pc) return;
    const active = new Set(msg.active || []);
    const paused = new Set(msg.paused || []);
    const sender = typeof msg.track === "string" ? senderFor(pc, msg.track) : null;
    // applied: one of our senders was told; tests read it.
    const state = { track: msg.track, active: [...active], paused: [...paused], applied: false };
    hc.layers = state;
    if (!sender) {
      console.warn("helpcaster: layers for a track we do not send:", msg.track);
      return;
    }
    const params = sender.getParameters();
    if (!params.encodings) return;
    let changed = false;
    for (const enc of params.encodings) {
      if (!enc.rid) continue;
      const want = active.has(enc.rid) ? true : paused.has(enc.rid) ? false : enc.active;
      if (enc.active !== want) {
        enc.active = want;
        changed = true;
      }
    }
    try {
      if (changed) await sender.setParameters(params);
      state.applied = true;
    } catch (err) {
      console.warn("helpcaster: could not change simulcast layers:", err);
    }
  }

  // SIMULCAST are the layers the server knows by rid: q, h and f.
  const SIMULCAST = [
    { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150000 },
    { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500000 },
    { rid: "f", maxBitrate: 1500000 },
  ];

  // Tell the server the size remote video is shown at, so it forwards the
  // smallest simulcast layer that fills it. Debounced: layout changes come
  // in bursts.
  let qualityTimer = 0;
  let lastQuality = "";
  function reportRenderSize() {
    clearTimeout(qualityTimer);
    qualityTimer = setTimeout(() => {
      if (!call) return;
      const r = ui.remoteVideo.getBoundingClientRect();
      const dpr = window.devicePixelRatio || 1;
      const width = Math.max(1, Math.round(r.width * dpr));
      const height = Math.max(1, Math.round(r.height * dpr));
      const key = width + "x" + height;
      if (key === lastQuality) return;
      lastQuality = key;
      send({ type: "quality", width: Math.min(width, 8192), height: Math.min(height, 8192) });
    }, 300);
  }
  if (window.ResizeObserver) {
    new ResizeObserver(reportRenderSize).observe(ui.remoteVideo);
  }

  function onRemoteTrack(e) {
    const stream = hc.remoteStream;
    const track = e.track;
    if (!stream.getTrackById(track.id)) stream.addTrack(track);
    track.addEventListener("ended", () => {
      if (hc.remoteStream === stream) stream.removeTrack(track);
    });
    // Audio and video arrive in separate events: reload the element so it
    // picks up the new set of tracks.
    ui.remoteVideo.srcObject = stream;
    playRemote();
    if (track.kind === "video") {
      lastQuality = "";
      reportRenderSize();
    }
  }

  function playRemote() {
    const v = ui.remoteVideo;
    v.muted = false;
    const p = v.play();
    if (!p) return;
    p.then(() => {
      if (ui.playRemote) ui.playRemote.hidden = true;
    }).catch((err) => {
      // Autoplay with sound can be blocked until the user interacts.
      if (err && err.name === "NotAllowedError" && ui.playRemote) ui.playRemote.hidden = false;
    });
  }

  // ---- wiring ----

  if (ui.join) {
    ui.join.addEventListener("click", () => startSession());
  }
  if (ui.available) {
    ui.available.addEventListener("click", () => {
      agentWants = "available";
      if (wsOpen() && welcomed) {
        if (send({ type: "available" })) awaitingAgentState = true;
        updateControls();
      } else if (!wsActive()) {
        startSession();
      }
    });
  }
  if (ui.away) {
    ui.away.addEventListener("click", () => {
      agentWants = "away";
      if (send({ type: "away" })) awaitingAgentState = true;
      updateControls();
    });
  }
  if (ui.recordToggle) ui.recordToggle.addEventListener("click", askRecording);
  if (ui.recordConsent && tokenFromURL) ui.recordConsent.closest("label").hidden = true;
  ui.hangup.addEventListener("click", hangUp);
  ui.chatForm.addEventListener("submit", sendChat);
  if (ui.playRemote) ui.playRemote.addEventListener("click", playRemote);
  window.addEventListener("pagehide", () => {
    dropSocket("page closed");
    endCall();
  });

  updateControls();
})();
