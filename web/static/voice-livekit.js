// coachloop: voice practice in a LiveKit room, for the voice practice page when the server has
// LiveKit configured. It needs the vendored LiveKit client (`LivekitClient`, loaded before this
// file) and hands the page the same events as the WebSocket transport, so the page shows
// both the same way:
//
//   var call = await CoachloopLiveKit.connect({
//     tokenUrl: "/api/practice/assignments/42/livekit-token",
//     csrfToken: "...",
//     onEvent: function (event) { ... },   // ready, transcript, state, feedback, error, ended
//   });
//   call.setMicrophone(false);             // a talk button: true while it is held
//   call.end();                            // score now; `feedback` follows, then `ended`
//
// On the voice practice page, a `#voice-practice` section with `data-livekit-token-url` (and
// `data-csrf-token`) is driven from here: Start, open mic or hold to talk, the live
// transcript, End, and the feedback; each event is also dispatched on the section as a
// `coachloop:voice` DOM event whose `detail` is the event.
(function () {
  "use strict";

  var EVENTS_TOPIC = "coachloop.practice";
  var CONTROL_TOPIC = "coachloop.control";
  var TRANSCRIPTION_TOPIC = "lk.transcription";
  var AGENT_STATE = "lk.agent.state";
  var FINAL = "lk.transcription_final";

  function fail(message) {
    var error = new Error(message);
    error.userMessage = message;
    return error;
  }

  function fetchJoin(tokenUrl, csrfToken) {
    return fetch(tokenUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": csrfToken || "" },
    }).then(function (response) {
      return response
        .json()
        .catch(function () {
          return {};
        })
        .then(function (body) {
          if (!response.ok) {
            throw fail(body.detail || "The practice room could not be opened (" + response.status + ").");
          }
          return body;
        });
    });
  }

  function connect(options) {
    var lk = window.LivekitClient;
    var emit = options.onEvent || function () {};
    if (!lk) return Promise.reject(fail("The LiveKit client did not load; reload the page."));
    if (!navigator.mediaDevices) {
      return Promise.reject(fail("This browser cannot use the microphone here (it needs HTTPS)."));
    }
    var room = new lk.Room({
      adaptiveStream: false,
      dynacast: false,
      audioCaptureDefaults: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    var join = null;
    var ended = false;
    var audio = [];

    function finish() {
      if (ended) return;
      ended = true;
      audio.forEach(function (element) {
        element.remove();
      });
      emit({ type: "ended" });
    }

    room.registerTextStreamHandler(EVENTS_TOPIC, function (reader) {
      reader.readAll().then(function (text) {
        var event;
        try {
          event = JSON.parse(text);
        } catch (_) {
          return;
        }
        emit(event);
        if (event.type === "feedback" || event.type === "error") {
          // the session is over: leave once the message is shown
          window.setTimeout(function () {
            room.disconnect();
          }, 500);
        }
      });
    });

    room.registerTextStreamHandler(TRANSCRIPTION_TOPIC, function (reader, participant) {
      var mine = participant && participant.identity === room.localParticipant.identity;
      var attributes = (reader.info && reader.info.attributes) || {};
      if (mine) {
        // the rep's words: interim guesses are skipped, the final transcript is shown
        if (attributes[FINAL] !== "true") return;
        reader.readAll().then(function (text) {
          if (text.trim()) emit({ type: "transcript", speaker: "rep", text: text, final: true });
        });
        return;
      }
      var whole = "";
      (async function () {
        for await (var piece of reader) {
          whole += piece;
          emit({ type: "transcript", speaker: "persona", text: piece, final: false });
        }
        if (whole.trim()) emit({ type: "transcript", speaker: "persona", text: whole, final: true });
      })().catch(function () {});
    });

    room.on(lk.RoomEvent.TrackSubscribed, function (track) {
      if (track.kind !== lk.Track.Kind.Audio) return;
      var element = track.attach();
      element.hidden = true;
      document.body.appendChild(element);
      audio.push(element);
    });
    room.on(lk.RoomEvent.TrackUnsubscribed, function (track) {
      track.detach().forEach(function (element) {
        element.remove();
      });
    });
    room.on(lk.RoomEvent.ParticipantAttributesChanged, function (changed, participant) {
      if (participant === room.localParticipant || !(AGENT_STATE in changed)) return;
      emit({ type: "state", agent: changed[AGENT_STATE] });
    });
    room.on(lk.RoomEvent.AudioPlaybackStatusChanged, function () {
      if (!room.canPlaybackAudio) {
        emit({ type: "error", message: "Tap the page to hear the customer.", recoverable: true });
      }
    });
    room.on(lk.RoomEvent.Disconnected, finish);

    return fetchJoin(options.tokenUrl, options.csrfToken)
      .then(function (body) {
        join = body;
        emit({ type: "connecting", room: body.room });
        return room.connect(body.url, body.token);
      })
      .then(function () {
        return room.localParticipant.setMicrophoneEnabled(true);
      })
      .then(function () {
        return room.startAudio();
      })
      .then(function () {
        return {
          room: room,
          join: join,
          setMicrophone: function (on) {
            return room.localParticipant.setMicrophoneEnabled(!!on);
          },
          end: function () {
            var message = new TextEncoder().encode(JSON.stringify({ type: "end" }));
            return room.localParticipant
              .publishData(message, { reliable: true, topic: CONTROL_TOPIC })
              .then(function () {
                return room.localParticipant.setMicrophoneEnabled(false);
              });
          },
          disconnect: function () {
            return room.disconnect();
          },
        };
      })
      .catch(function (error) {
        room.disconnect();
        throw error.userMessage ? error : fail("Could not join the practice room: " + error.message);
      });
  }

  // the voice practice page (`practice_voice.html`) in LiveKit mode: the page's section carries
  // `data-livekit-token-url`, and this drives its buttons, transcript and feedback
  function byId(id) {
    return document.getElementById(id);
  }

  function say(text) {
    var status = byId("voice-status");
    if (status) status.textContent = text;
  }

  function addLine(log, speaker, text, persona) {
    var item = document.createElement("li");
    item.className = "chat-" + speaker;
    var who = document.createElement("span");
    who.className = "speaker";
    who.textContent = speaker === "rep" ? "You" : persona;
    var body = document.createElement("p");
    body.textContent = text;
    item.appendChild(who);
    item.appendChild(body);
    log.appendChild(item);
    item.scrollIntoView({ block: "end" });
    return body;
  }

  function element(tag, text, className) {
    var node = document.createElement(tag);
    if (text) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function showFeedback(result) {
    var section = byId("voice-feedback");
    if (!section) return;
    var outcome = String(result.outcome || "").replace(/_/g, " ");
    byId("voice-outcome").textContent =
      outcome + " (" + result.end_reason + "), " + result.rep_turns + " turns.";
    var unscored = byId("voice-unscored");
    if (result.unscored_reason) {
      unscored.textContent = "Not scored: " + result.unscored_reason;
      unscored.hidden = false;
    }
    var scores = byId("voice-scores");
    scores.textContent = "";
    (result.feedback || []).forEach(function (f) {
      var card = element("div", "", "score");
      var level = f.level === null || f.level === undefined ? "N/A" : f.level + "/3";
      var title = element("h3", f.name + ": " + level);
      if (f.targeted) title.appendChild(element("span", "practised", "badge"));
      card.appendChild(title);
      if (f.moment) card.appendChild(element("p", "\u201c" + f.moment.quote + "\u201d"));
      var good = element("p");
      good.appendChild(element("strong", "What good looks like: "));
      good.appendChild(
        document.createTextNode(
          f.good_looks_like + (f.good_example ? " e.g. \u201c" + f.good_example + "\u201d" : "")
        )
      );
      card.appendChild(good);
      if (f.next_step) card.appendChild(element("p", "Next time: " + f.next_step, "muted"));
      scores.appendChild(card);
    });
    var comparison = byId("voice-comparison");
    comparison.textContent = "";
    (result.comparison || []).forEach(function (c) {
      var practice = c.practice_level === null ? "N/A" : c.practice_level;
      var real = c.real_mean === null ? "none scored yet" : Number(c.real_mean).toFixed(1);
      comparison.appendChild(
        element("p", c.criterion_id + ": " + practice + " in practice; real calls " + real + ".", "muted")
      );
    });
    if (result.note) byId("voice-note").textContent = result.note;
    var link = byId("voice-interaction");
    if (link && result.interaction_id) {
      link.href = "/interactions/" + result.interaction_id;
      link.hidden = false;
    }
    section.hidden = false;
    section.scrollIntoView({ block: "start" });
  }

  function page(section) {
    var start = byId("voice-start");
    var end = byId("voice-end");
    var talk = byId("voice-talk");
    var log = byId("voice-log");
    var persona = section.getAttribute("data-persona") || "Customer";
    if (!start || !log) return;
    var call = null;
    var speaking = null;
    var pushToTalk = false;

    function onEvent(event) {
      section.dispatchEvent(new CustomEvent("coachloop:voice", { detail: event }));
      if (event.type === "connecting") say("Joining the practice room\u2026");
      else if (event.type === "ready") say(persona + " is on the line.");
      else if (event.type === "state" && event.agent) {
        section.setAttribute("data-state", event.agent);
        if (event.agent === "speaking") say(persona + " is speaking.");
        else if (event.agent === "thinking") say(persona + " is thinking\u2026");
        else if (event.agent === "listening") say(pushToTalk ? "Hold the button to talk." : "Your turn.");
      } else if (event.type === "transcript") {
        if (event.speaker === "rep") {
          addLine(log, "rep", event.text, persona);
        } else if (!event.final) {
          if (!speaking) speaking = addLine(log, "persona", "", persona);
          speaking.textContent += event.text;
        } else {
          if (speaking) speaking.textContent = event.text;
          else addLine(log, "persona", event.text, persona);
          speaking = null;
        }
      } else if (event.type === "feedback") {
        say("The session is over.");
        showFeedback(event.result);
      } else if (event.type === "error") {
        say(event.message);
        if (!event.recoverable) start.disabled = false;
      } else if (event.type === "ended") {
        section.setAttribute("data-state", "ended");
        if (end) end.disabled = true;
        if (talk) talk.hidden = true;
        call = null;
      }
    }

    start.addEventListener("click", function () {
      var mode = document.querySelector("#voice-mode input[name=mode]:checked");
      pushToTalk = !!mode && mode.value === "push";
      start.disabled = true;
      connect({
        tokenUrl: section.getAttribute("data-livekit-token-url"),
        csrfToken: section.getAttribute("data-csrf-token"),
        onEvent: onEvent,
      })
        .then(function (opened) {
          call = opened;
          if (end) end.disabled = false;
          if (talk && pushToTalk) {
            talk.hidden = false;
            return call.setMicrophone(false);
          }
        })
        .catch(function (error) {
          start.disabled = false;
          say(error.userMessage || String(error));
        });
    });
    if (end) {
      end.addEventListener("click", function () {
        if (!call) return;
        end.disabled = true;
        say("Scoring the session\u2026");
        call.end();
      });
    }
    if (talk) {
      var down = function (event) {
        event.preventDefault();
        if (!call) return;
        talk.setAttribute("aria-pressed", "true");
        call.setMicrophone(true);
      };
      var up = function () {
        if (!call) return;
        talk.setAttribute("aria-pressed", "false");
        call.setMicrophone(false);
      };
      talk.addEventListener("pointerdown", down);
      talk.addEventListener("pointerup", up);
      talk.addEventListener("pointerleave", up);
      talk.addEventListener("pointercancel", up);
    }
  }

  window.CoachloopLiveKit = { connect: connect };

  document.addEventListener("DOMContentLoaded", function () {
    var section = document.querySelector("#voice-practice[data-livekit-token-url]");
    if (section) page(section);
  });
})();
