/* Charts of the analyst dashboard (Chart.js 2.9, served by this host).
 *
 * Each <canvas data-chart="energy|battery" data-source="ID"> draws the JSON of <script id="ID">
 * (rendered by the server with json_script). A small plugin draws the efficiency threshold and
 * the meter assignments as bands on the time axis. The charts are kept in window.dashboardCharts
 * (the browser tests read their datasets) and "dashboard-charts-drawn" is marked when all drew.
 */
(function () {
  "use strict";
  // Chart.js 2 would insert a <style> element; the CSP forbids it (dashboard.css has the rules).
  Chart.platform.disableCSSInjection = true;

  var BAND_COLOURS = ["rgba(11, 92, 173, 0.08)", "rgba(230, 145, 56, 0.12)", "rgba(46, 125, 50, 0.10)"];
  var BAND_EDGES = ["rgba(11, 92, 173, 0.5)", "rgba(230, 145, 56, 0.6)", "rgba(46, 125, 50, 0.5)"];

  function readJson(id) {
    return JSON.parse(document.getElementById(id).textContent);
  }

  // The x pixel of an instant: buckets are evenly spaced categories of uneven length (the first
  // and last may be clipped to the window), so interpolate inside the bucket holding it.
  function xOf(chart, edges, instant) {
    var scale = chart.scales.x;
    var width = (scale.right - scale.left) / edges.length;
    for (var i = 0; i < edges.length; i++) {
      var start = edges[i][0], end = edges[i][1];
      if (instant < end || i === edges.length - 1) {
        var fraction = Math.min(1, Math.max(0, (instant - start) / (end - start || 1)));
        return scale.left + (i + fraction) * width;
      }
    }
    return scale.left;
  }

  var overlays = {
    id: "dashboardOverlays",
    beforeDatasetsDraw: function (chart) {
      var overlay = chart.options.overlay;
      if (!overlay || !overlay.bands) return;
      var ctx = chart.ctx, area = chart.chartArea;
      overlay.bands.forEach(function (band, i) {
        var left = xOf(chart, overlay.edges, band.from), right = xOf(chart, overlay.edges, band.to);
        ctx.save();
        ctx.fillStyle = BAND_COLOURS[i % BAND_COLOURS.length];
        ctx.fillRect(left, area.top, right - left, area.bottom - area.top);
        ctx.strokeStyle = BAND_EDGES[i % BAND_EDGES.length];
        ctx.beginPath();
        ctx.moveTo(left, area.top);
        ctx.lineTo(left, area.bottom);
        ctx.stroke();
        ctx.fillStyle = "#37474f";
        ctx.font = "12px system-ui, sans-serif";
        ctx.fillText(band.label, left + 4, area.top + 14);
        ctx.restore();
      });
    },
    afterDatasetsDraw: function (chart) {
      var overlay = chart.options.overlay;
      if (!overlay || overlay.threshold == null || !chart.scales.pct) return;
      var ctx = chart.ctx, area = chart.chartArea;
      var y = chart.scales.pct.getPixelForValue(overlay.threshold);
      ctx.save();
      ctx.strokeStyle = "#c62828";
      ctx.setLineDash([6, 4]);
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.moveTo(area.left, y);
      ctx.lineTo(area.right, y);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = "#c62828";
      ctx.font = "12px system-ui, sans-serif";
      ctx.textAlign = "right";
      ctx.fillText("threshold " + overlay.threshold + " %", area.right - 4, y - 4);
      ctx.restore();
    }
  };
  Chart.plugins.register(overlays);

  function overlayOf(data, withThreshold) {
    var toMs = function (text) { return Date.parse(text); };
    return {
      threshold: withThreshold ? data.threshold : null,
      edges: data.edges.map(function (edge) { return [toMs(edge[0]), toMs(edge[1])]; }),
      bands: (data.bands || []).map(function (band) {
        return { label: band.label, from: toMs(band.from), to: toMs(band.to) };
      })
    };
  }

  function common(data, yAxes, withThreshold) {
    return {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      legend: { position: "bottom" },
      tooltips: { mode: "index", intersect: false },
      scales: {
        xAxes: [{ id: "x", offset: true, gridLines: { display: false }, ticks: { autoSkip: true, maxRotation: 0 } }],
        yAxes: yAxes
      },
      overlay: overlayOf(data, withThreshold)
    };
  }

  function energyChart(canvas, data) {
    var top = Math.max(100, data.threshold + 10);
    data.efficiencyPct.forEach(function (value) { if (value != null && value > top) top = Math.ceil(value / 10) * 10; });
    return new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [
          { type: "line", label: "efficiency %", yAxisID: "pct", data: data.efficiencyPct, borderColor: "#263238",
            backgroundColor: "#263238", fill: false, lineTension: 0, pointRadius: 2, borderWidth: 2 },
          { label: "AC consumed kWh", yAxisID: "kwh", data: data.acKwh, backgroundColor: "rgba(11, 92, 173, 0.75)" },
          { label: "DC delivered kWh", yAxisID: "kwh", data: data.dcKwh, backgroundColor: "rgba(230, 145, 56, 0.8)" }
        ]
      },
      options: common(data, [
        { id: "kwh", position: "left", ticks: { beginAtZero: true }, scaleLabel: { display: true, labelString: "kWh" } },
        { id: "pct", position: "right", ticks: { min: 0, max: top }, gridLines: { drawOnChartArea: false },
          scaleLabel: { display: true, labelString: "efficiency %" } }
      ], true)
    });
  }

  function batteryChart(canvas, data) {
    return new Chart(canvas, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: [
          { label: "state of charge % (average)", yAxisID: "soc", data: data.avgSocPct, borderColor: "#2e7d32",
            backgroundColor: "#2e7d32", fill: false, lineTension: 0, pointRadius: 2, borderWidth: 2 },
          { label: "battery temperature °C (average)", yAxisID: "temp", data: data.avgBatteryTempC,
            borderColor: "#c62828", backgroundColor: "#c62828", fill: false, lineTension: 0, pointRadius: 2, borderWidth: 2 }
        ]
      },
      options: common(data, [
        { id: "soc", position: "left", ticks: { min: 0, max: 100 }, scaleLabel: { display: true, labelString: "SoC %" } },
        { id: "temp", position: "right", gridLines: { drawOnChartArea: false },
          scaleLabel: { display: true, labelString: "°C" } }
      ], false)
    });
  }

  function presetToggle() {
    var preset = document.getElementById("window");
    var from = document.getElementById("from"), to = document.getElementById("to");
    if (!preset || !from || !to) return;
    preset.addEventListener("change", function () {
      from.disabled = to.disabled = preset.value !== "";
    });
  }

  function drawAll() {
    var charts = window.dashboardCharts = {};
    var builders = { energy: energyChart, battery: batteryChart };
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      charts[canvas.id] = builders[canvas.dataset.chart](canvas, readJson(canvas.dataset.source));
    });
    presetToggle();
    performance.mark("dashboard-charts-drawn");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
