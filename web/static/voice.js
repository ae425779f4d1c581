// Voice practice over the web app's WebSocket: the microphone goes up as 16-bit PCM, the
// persona's voice comes back as 16-bit PCM and is played back to back; JSON events carry the
// transcript, the turn state and at the end the feedback. Protocol: voice/ws_transport.py.
(function () {
  "use strict";

  var root = document.getElementById("voice-practice");
  if (!root || root.dataset.available !== "yes") return;

  var MIC_RATE = 16000;
  var persona = root.dataset.persona || "Persona";
  var startButton = document.getElementById("voice-start");
  var endButton = document.getElementById("voice-end");
  var talkButton = document.getElementById("voice-talk");
  var statusLine = document.getElementById("voice-status");
  var log = document.getElementById("voice-log");
  var modeInputs = document.querySelectorAll("#voice-mode input[name=mode]");

  var socket = null;
  var micContext = null;
  var micStream = null;
  var capture = null;
  var speaker = null;
  var playAt = 0;
  var playing = [];
  var outputRate = 22050;
  var current = null; // the persona's line being spoken
  var pushToTalk = false;
  var finished = false;
  var heardSeconds = 0;

  function setStatus(text, state) {
    statusLine.textContent = text;
    if (state) root.dataset.state = state;
  }

  function addLine(who, text) {
    var item = document.createElement("li");
    item.className = who === "rep" ? "chat-rep" : "chat-persona";
    var name = document.createElement("span");
    name.className = "speaker";
    name.textContent = who === "rep" ? "You" : persona;
    var words = document.createElement("p");
    words.textContent = text;
    item.appendChild(name);
    item.appendChild(words);
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
    return item;
  }

  function setMuted(muted) {
    if (capture) capture.port.postMessage({ muted: muted });
    talkButton.setAttribute("aria-pressed", muted ? "false" : "true");
  }

  function applyMode() {
    for (var i = 0; i < modeInputs.length; i++) {
      if (modeInputs[i].checked) pushToTalk = modeInputs[i].value === "push";
    }
    talkButton.hidden = !pushToTalk || !socket;
    setMuted(pushToTalk);
  }

  function stopPlayback() {
    playing.forEach(function (source) {
      try { source.stop(); } catch (e) { /* already ended */ }
    });
    playing = [];
    if (speaker) playAt = speaker.currentTime;
  }

  function play(data) {
    if (!speaker) return;
    var pcm = new Int16Array(data);
    if (!pcm.length) return;
    var buffer = speaker.createBuffer(1, pcm.length, outputRate);
    var samples = buffer.getChannelData(0);
    for (var i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
    var source = speaker.createBufferSource();
    source.buffer = buffer;
    source.connect(speaker.destination);
    playAt = Math.max(playAt, speaker.currentTime + 0.03);
    source.start(playAt);
    playAt += buffer.duration;
    playing.push(source);
    source.onended = function () {
      var at = playing.indexOf(source);
      if (at >= 0) playing.splice(at, 1);
    };
    heardSeconds += buffer.duration;
    root.dataset.personaAudio = heardSeconds.toFixed(2);
  }

  function text(value) {
    return value === null || value === undefined ? "" : String(value);
  }

  function showFeedback(event) {
    var result = event.result || {};
    var section = document.getElementById("voice-feedback");
    document.getElementById("voice-outcome").textContent =
      text(result.outcome).replace(/_/g, " ") + " (" + text(result.end_reason) + "), " +
      text(result.rep_turns) + " turns.";
    var unscored = document.getElementById("voice-unscored");
    unscored.hidden = !result.unscored_reason;
    unscored.textContent = result.unscored_reason ? "Not scored: " + result.unscored_reason : "";
    var scores = document.getElementById("voice-scores");
    scores.textContent = "";
    (result.feedback || []).forEach(function (f) {
      var box = document.createElement("div");
      box.className = "score";
      var title = document.createElement("h3");
      title.textContent = f.name + ": " + (f.level === null ? "N/A" : f.level + "/3");
      if (f.targeted) {
        var badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = "practised";
        title.appendChild(document.createTextNode(" "));
        title.appendChild(badge);
      }
      box.appendChild(title);
      if (f.moment && f.moment.quote) {
        var quote = document.createElement("p");
        quote.textContent = "“" + f.moment.quote + "”";
        box.appendChild(quote);
      }
      var good = document.createElement("p");
      var label = document.createElement("strong");
      label.textContent = "What good looks like: ";
      good.appendChild(label);
      good.appendChild(document.createTextNode(text(f.good_looks_like) +
        (f.good_example ? " e.g. “" + f.good_example + "”" : "")));
      box.appendChild(good);
      if (f.next_step) {
        var next = document.createElement("p");
        next.className = "muted";
        next.textContent = "Next time: " + f.next_step;
        box.appendChild(next);
      }
      scores.appendChild(box);
    });
    var comparison = document.getElementById("voice-comparison");
    comparison.textContent = "";
    (result.comparison || []).forEach(function (c) {
      var line = document.createElement("p");
      line.className = "muted";
      line.textContent = c.criterion_id + ": " +
        (c.practice_level === null ? "N/A" : c.practice_level) + " in practice; real calls " +
        (c.real_mean === null ? "none scored yet" : Number(c.real_mean).toFixed(2)) +
        (c.real_sessions ? " over " + c.real_sessions + " calls" : "") + ".";
      comparison.appendChild(line);
    });
    document.getElementById("voice-note").textContent = text(result.note);
    var link = document.getElementById("voice-interaction");
    if (result.interaction_id) {
      link.href = "/interactions/" + result.interaction_id;
      link.hidden = false;
    }
    section.hidden = false;
    root.dataset.feedback = "shown";
    section.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  function onEvent(event) {
    if (event.type === "ready") {
      outputRate = event.sample_rate || outputRate;
      endButton.disabled = false;
      startButton.hidden = true;
      applyMode();
      setStatus(persona + " is on the line.", "connected");
    } else if (event.type === "transcript") {
      if (event.speaker === "rep") {
        if (event.text) addLine("rep", event.text);
      } else if (!event.final) {
        if (!current) {
          current = addLine("persona", "");
          current.classList.add("interim");
        }
        var words = current.querySelector("p");
        words.textContent += event.text;
      } else {
        var line = current || addLine("persona", "");
        line.querySelector("p").textContent = event.text;
        line.classList.remove("interim");
        if (event.interrupted) line.classList.add("interrupted");
        current = null;
      }
    } else if (event.type === "state") {
      if (event.agent === "speaking") setStatus(persona + " is speaking…", "speaking");
      else if (event.agent === "thinking") setStatus(persona + " is thinking…", "thinking");
      else if (event.agent === "listening") {
        setStatus(pushToTalk ? "Your turn: hold the button and speak." : "Your turn: speak.",
          "listening");
      }
    } else if (event.type === "clear") {
      stopPlayback();
    } else if (event.type === "feedback") {
      finished = true;
      showFeedback(event);
      setStatus("The session is over and scored.", "ended");
    } else if (event.type === "error") {
      setStatus(event.message || "Something went wrong.", "error");
    } else if (event.type === "ended") {
      finished = true;
      hangUp();
    }
  }

  function hangUp() {
    endButton.disabled = true;
    talkButton.hidden = true;
    if (micStream) micStream.getTracks().forEach(function (t) { t.stop(); });
    if (micContext) micContext.close();
    micStream = null;
    micContext = null;
    capture = null;
  }

  async function openMicrophone() {
    micStream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    try {
      micContext = new AudioContext({ sampleRate: MIC_RATE });
    } catch (e) {
      micContext = new AudioContext(); // this browser will not resample; send its own rate
    }
    await micContext.audioWorklet.addModule(root.dataset.worklet || "/static/voice-capture.js");
    var input = micContext.createMediaStreamSource(micStream);
    capture = new AudioWorkletNode(micContext, "microphone-capture");
    capture.port.onmessage = function (message) {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(message.data);
    };
    input.connect(capture);
    // a muted path to the output keeps the graph running in every browser
    var sink = micContext.createGain();
    sink.gain.value = 0;
    capture.connect(sink);
    sink.connect(micContext.destination);
    return micContext.sampleRate;
  }

  async function start() {
    startButton.disabled = true;
    setStatus("Connecting…", "connecting");
    speaker = new AudioContext();
    await speaker.resume();
    var rate;
    try {
      rate = await openMicrophone();
    } catch (e) {
      setStatus("The microphone is not available: " + e.message +
        ". Allow it in the browser's site settings, then reload.", "error");
      startButton.disabled = false;
      return;
    }
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(scheme + "//" + location.host + root.dataset.socket);
    socket.binaryType = "arraybuffer";
    socket.onopen = function () {
      socket.send(JSON.stringify({ type: "hello", sample_rate: rate }));
    };
    socket.onmessage = function (message) {
      if (typeof message.data === "string") onEvent(JSON.parse(message.data));
      else play(message.data);
    };
    socket.onclose = function (event) {
      if (!finished) {
        setStatus(event.reason || "The connection closed. Reload the page to start again.",
          "error");
      }
      hangUp();
    };
  }

  startButton.addEventListener("click", function () { start(); });
  endButton.addEventListener("click", function () {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "end" }));
      endButton.disabled = true;
      setMuted(true);
      stopPlayback();
      setStatus("Scoring the session…", "scoring");
    }
  });
  for (var i = 0; i < modeInputs.length; i++) modeInputs[i].addEventListener("change", applyMode);

  function press(event) {
    event.preventDefault();
    if (pushToTalk) setMuted(false);
  }
  function release(event) {
    event.preventDefault();
    if (pushToTalk) setMuted(true);
  }
  talkButton.addEventListener("pointerdown", press);
  talkButton.addEventListener("pointerup", release);
  talkButton.addEventListener("pointercancel", release);
  talkButton.addEventListener("pointerleave", release);
  talkButton.addEventListener("keydown", function (e) { if (e.key === " " || e.key === "Enter") press(e); });
  talkButton.addEventListener("keyup", function (e) { if (e.key === " " || e.key === "Enter") release(e); });
})();
