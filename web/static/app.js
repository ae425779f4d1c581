// coachloop: the little the pages need from the browser. Everything works without it except
// the charts (their figures are in a table beside each one) and the live practice chat
// (which falls back to plain form posts).
(function () {
  "use strict";

  var PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];
  var POINTS = ["circle", "rect", "triangle", "rectRot", "crossRot", "star", "cross"];
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  function shortDate(value) {
    var d = typeof value === "number" ? new Date(value) : new Date(value + "T00:00:00Z");
    return d.getUTCDate() + " " + MONTHS[d.getUTCMonth()];
  }

  // a dashed line at the coaching threshold, labelled, drawn under the data
  var thresholdLine = {
    id: "thresholdLine",
    beforeDatasetsDraw: function (chart, _args, options) {
      if (options.value === null || options.value === undefined) return;
      var y = chart.scales.y.getPixelForValue(options.value);
      var area = chart.chartArea;
      var ctx = chart.ctx;
      ctx.save();
      ctx.strokeStyle = "#b00020";
      ctx.lineWidth = 1.5;
      ctx.setLineDash([5, 4]);
      ctx.beginPath();
      ctx.moveTo(area.left, y);
      ctx.lineTo(area.right, y);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = "#b00020";
      ctx.font = "12px system-ui, sans-serif";
      ctx.textAlign = "right";
      ctx.fillText("coaching below " + options.value, area.right - 4, y - 4);
      ctx.restore();
    },
  };

  function levelAxis() {
    return {
      min: 0.8,
      max: 3.2,
      ticks: {
        stepSize: 1,
        callback: function (v) {
          return Number.isInteger(v) ? v : "";
        },
      },
      title: { display: true, text: "level" },
    };
  }

  function trendConfig(spec) {
    return {
      type: "line",
      data: {
        labels: spec.labels.map(shortDate),
        datasets: spec.datasets.map(function (ds, i) {
          return {
            label: ds.label,
            data: ds.data,
            borderColor: PALETTE[i % PALETTE.length],
            backgroundColor: PALETTE[i % PALETTE.length],
            pointStyle: POINTS[i % POINTS.length],
            pointRadius: 4,
            borderWidth: 2.5,
            spanGaps: true,
            counts: ds.n,
          };
        }),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "nearest", intersect: false },
        scales: { y: levelAxis() },
        plugins: {
          legend: { position: "bottom", labels: { usePointStyle: true, boxWidth: 10 } },
          thresholdLine: { value: spec.threshold },
          tooltip: {
            callbacks: {
              label: function (item) {
                var n = item.dataset.counts ? item.dataset.counts[item.dataIndex] : null;
                return item.dataset.label + ": " + item.formattedValue + (n ? " (" + n + " sessions)" : "");
              },
            },
          },
        },
      },
      plugins: [thresholdLine],
    };
  }

  function sessionsConfig(panel, threshold) {
    function dataset(label, points, colour, style, line) {
      return {
        label: label,
        data: points,
        borderColor: colour,
        backgroundColor: colour,
        pointStyle: style,
        pointRadius: 5,
        pointHoverRadius: 7,
        showLine: line,
        borderWidth: 1.5,
      };
    }
    return {
      type: "scatter",
      data: {
        datasets: [
          dataset("real calls", panel.calls, PALETTE[0], "circle", true),
          dataset("practice", panel.practice, PALETTE[1], "triangle", false),
        ],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: {
          y: levelAxis(),
          x: { type: "linear", ticks: { maxTicksLimit: 6, callback: shortDate } },
        },
        onClick: function (_event, elements, chart) {
          if (!elements.length) return;
          var el = elements[0];
          var point = chart.data.datasets[el.datasetIndex].data[el.index];
          if (point && point.href) window.location.href = point.href;
        },
        plugins: {
          legend: { position: "bottom", labels: { usePointStyle: true, boxWidth: 10 } },
          thresholdLine: { value: threshold },
          tooltip: {
            callbacks: {
              label: function (item) {
                return item.dataset.label + " " + shortDate(item.raw.x) + ": level " + item.raw.y;
              },
            },
          },
        },
      },
      plugins: [thresholdLine],
    };
  }

  function drawCharts() {
    if (typeof window.Chart === "undefined") return;
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var source = document.getElementById(canvas.getAttribute("data-chart"));
      if (!source) return;
      var spec = JSON.parse(source.textContent);
      var config;
      if (spec.kind === "trend") {
        config = trendConfig(spec);
      } else if (spec.kind === "sessions") {
        var panel = spec.panels[Number(canvas.getAttribute("data-panel") || 0)];
        config = sessionsConfig(panel, spec.threshold);
      } else {
        return;
      }
      new window.Chart(canvas, config);
      canvas.setAttribute("data-drawn", "true");
    });
  }

  // parts of a page that are loaded after it (the dashboard's checkpoint report); without
  // scripts, the link inside opens them as a page of their own
  function loadParts() {
    if (!window.fetch) return;
    document.querySelectorAll("[data-load]").forEach(function (target) {
      fetch(target.getAttribute("data-load"), {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      })
        .then(function (response) {
          if (!response.ok) throw new Error("status " + response.status);
          return response.text();
        })
        .then(function (html) {
          target.innerHTML = html;
          target.setAttribute("data-loaded", "true");
        })
        .catch(function () {
          target.setAttribute("data-loaded", "failed");
        })
        .then(function () {
          target.removeAttribute("aria-busy");
        });
    });
  }

  function autoSubmit() {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () {
        select.form.submit();
      });
    });
    document.querySelectorAll("[data-hide-with-js]").forEach(function (el) {
      el.hidden = true;
    });
  }

  function confirmButtons() {
    document.querySelectorAll("button[data-confirm]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        if (!window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  function practiceChat() {
    var form = document.getElementById("turn-form");
    var log = document.getElementById("chat-log");
    if (!form || !log || !window.fetch) return;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var input = form.querySelector("textarea, input[name=text]");
      var text = input.value;
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      var body = new FormData(form);
      if (text.trim()) addTurn(log, "you", text);
      input.value = "";
      fetch(form.action, {
        method: "POST",
        body: body,
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      })
        .then(function (response) {
          if (!response.ok) throw new Error("status " + response.status);
          return response.json();
        })
        .then(function (data) {
          if (data.persona) addTurn(log, "persona", data.persona);
          var left = document.getElementById("turns-left");
          if (left) left.textContent = data.turns_left;
          if (data.ended) window.location.reload();
          button.disabled = false;
          input.focus();
        })
        .catch(function () {
          window.location.reload();
        });
    });
  }

  function addTurn(log, who, text) {
    var item = document.createElement("li");
    item.className = "chat-" + (who === "you" ? "rep" : "persona");
    var speaker = document.createElement("span");
    speaker.className = "speaker";
    speaker.textContent = who === "you" ? "You" : log.getAttribute("data-persona") || "Customer";
    var body = document.createElement("p");
    body.textContent = text;
    item.appendChild(speaker);
    item.appendChild(body);
    log.appendChild(item);
    item.scrollIntoView({ block: "end" });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    loadParts();
    autoSubmit();
    confirmButtons();
    practiceChat();
  });
})();
