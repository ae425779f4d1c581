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
// A page may instead mark an element `data-livekit-token-url` (with `data-csrf-token`) and
// listen for `coachloop:voice` DOM events on it, whose `detail` is the event; buttons inside
// it marked `data-voice-start`, `data-voice-end` and `data-voice-talk` are then wired here.
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

  // the markup-only way: a container with data attributes and buttons inside it
  function wire(container) {
    var call = null;
    function emit(event) {
      container.dispatchEvent(new CustomEvent("coachloop:voice", { detail: event }));
    }
    function button(name) {
      return container.querySelector("[data-voice-" + name + "]");
    }
    var start = button("start");
    var end = button("end");
    var talk = button("talk");
    if (!start) return;
    start.addEventListener("click", function () {
      start.disabled = true;
      connect({
        tokenUrl: container.getAttribute("data-livekit-token-url"),
        csrfToken: container.getAttribute("data-csrf-token"),
        onEvent: emit,
      })
        .then(function (opened) {
          call = opened;
          if (end) end.disabled = false;
          if (talk) {
            talk.disabled = false;
            call.setMicrophone(false);
          }
        })
        .catch(function (error) {
          start.disabled = false;
          emit({ type: "error", message: error.userMessage || String(error) });
        });
    });
    if (end) {
      end.addEventListener("click", function () {
        if (!call) return;
        end.disabled = true;
        call.end();
      });
    }
    if (talk) {
      var down = function (event) {
        event.preventDefault();
        if (call) call.setMicrophone(true);
      };
      var up = function () {
        if (call) call.setMicrophone(false);
      };
      talk.addEventListener("pointerdown", down);
      talk.addEventListener("pointerup", up);
      talk.addEventListener("pointerleave", up);
      talk.addEventListener("pointercancel", up);
    }
  }

  window.CoachloopLiveKit = { connect: connect, wire: wire };

  document.addEventListener("DOMContentLoaded", function () {
    var found = document.querySelectorAll("[data-livekit-token-url][data-voice-standalone]");
    Array.prototype.forEach.call(found, wire);
  });
})();
