// stratum1 status page: refreshes the server-rendered page from /status.json every few seconds.
// Text goes in through textContent alone (never as markup); SVG is built with createElementNS.
// Formats match appliance/web/page.py; the headline's words come from the server (snap.words), which takes
// them from appliance/status/text.py: the script keeps no copy of them.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_POINTS = 720; // an hour at 5 s
  const live = [];

  function us(ns) {
    return (ns / 1000).toFixed(3) + " us";
  }

  function utc(ns) {
    if (ns === null || ns === undefined) return "never";
    return new Date(Math.floor(ns / 1e6)).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function setText(id, text) {
    const el = document.getElementById(id);
    if (el) el.textContent = text;
  }

  function systemFields(snap) {
    const s = snap.system;
    const up = Math.floor((snap.time_ns - snap.started_ns) / 1e9);
    return {
      stratum: String(s.stratum),
      refid: s.refid,
      basis: s.basis,
      leap: String(s.leap),
      offset: us(s.offset_ns),
      jitter: us(s.clock_jitter_ns),
      frequency: (s.frequency_ppb >= 0 ? "+" : "") + (s.frequency_ppb / 1000).toFixed(3) + " ppm",
      error: us(s.error_ns),
      distance: us(s.root_delay_ns / 2 + s.root_dispersion_ns),
      reference: utc(s.reference_ns),
      time: utc(snap.time_ns),
      uptime:
        Math.floor(up / 86400) + "d " + pad(Math.floor((up % 86400) / 3600)) + ":" +
        pad(Math.floor((up % 3600) / 60)) + ":" + pad(up % 60),
      version: snap.version,
    };
  }

  // why the receiver is not heard (its serial link), as appliance/status/text.py's receiver_words; null while it talks
  function receiverWords(g) {
    const device = g.device || "its port";
    const rate = g.baud === null || g.baud === undefined ? "" : " at " + g.baud + " baud";
    if (g.link === "gone") return "receiver gone (" + device + (g.link_why ? ": " + g.link_why : "") + ")";
    if (g.link === "silent") return "receiver silent (no bytes on " + device + rate + ")";
    if (g.link === "unknown-rate") {
      return "receiver talks at an unknown rate (no NMEA on " + device + rate +
        (g.searching ? ", searching the rate" : "") + ")";
    }
    return null;
  }

  function gpsFields(g) {
    if (!g) return { "gps-fix": "none configured" };
    return {
      "gps-fix": receiverWords(g) || (g.fix ? g.fix_mode : "none"),
      "gps-used": g.satellites_used === null || !g.fix ? "?" : String(g.satellites_used),
      "gps-seen": g.satellites_in_view === null ? "?" : String(g.satellites_in_view),
      "gps-pps": g.pps ? "ok" : "missing",
      "gps-locked": g.locked ? "locked" : "not locked",
      "gps-delay": g.nmea_delay_ns === null ? "unknown" : (g.nmea_delay_ns / 1e6).toFixed(0) + " ms",
      "gps-last": utc(g.last_fix_ns),
    };
  }

  function sourceCells(s) {
    return [
      s.tally.trim() || "\u00a0", s.name, s.kind, s.address, s.refid, String(s.stratum),
      s.reach.toString(8), String(1 << s.poll), us(s.offset_ns), us(s.delay_ns), us(s.jitter_ns), s.why,
    ];
  }

  function fillDl(id, fields, labels) {
    const dl = document.getElementById(id);
    for (const [key, value] of Object.entries(fields)) {
      let dd = document.getElementById("f-" + key);
      if (!dd) {
        const dt = document.createElement("dt");
        dt.textContent = labels[key] || key;
        dd = document.createElement("dd");
        dd.id = "f-" + key;
        dl.append(dt, dd);
      }
      dd.textContent = value;
    }
  }

  function render(snap) {
    const head = document.getElementById("headline");
    head.textContent = snap.words.headline;
    head.className = snap.words.level;
    fillDl("system", systemFields(snap), {});
    const g = gpsFields(snap.gps);
    const dl = document.getElementById("gps");
    if (Object.keys(g).length !== dl.querySelectorAll("dd").length) dl.replaceChildren();
    fillDl("gps", g, {
      "gps-fix": snap.gps ? "Fix" : "Receiver", "gps-used": "Satellites used", "gps-seen": "Satellites in view",
      "gps-pps": "PPS", "gps-locked": "Seconds and pulses", "gps-delay": "NMEA delay", "gps-last": "Last fix",
    });

    const alarms = document.getElementById("alarms");
    alarms.replaceChildren();
    for (const a of snap.alarms) {
      const li = document.createElement("li");
      li.className = a.severity;
      const strong = document.createElement("strong");
      strong.textContent = a.severity.toUpperCase() + " " + a.code;
      const action = document.createElement("span");
      action.textContent = "what to do: " + a.action;
      li.append(strong, ": " + a.message, document.createElement("br"), action);
      alarms.append(li);
    }
    if (!snap.alarms.length) {
      const li = document.createElement("li");
      li.className = "ok";
      li.textContent = "none";
      alarms.append(li);
    }

    const body = document.querySelector("#sources tbody");
    body.replaceChildren();
    for (const s of snap.sources) {
      const tr = document.createElement("tr");
      for (const c of sourceCells(s)) {
        const td = document.createElement("td");
        td.textContent = c;
        tr.append(td);
      }
      body.append(tr);
    }

    drawSky(snap.gps);
    live.push([snap.time_ns / 1e9, snap.system.offset_ns / 1000]);
    if (live.length > MAX_POINTS) live.shift();
    drawLive();
    setText("updated", "read-only; updated " + utc(snap.time_ns));
  }

  function el(name, attrs, text) {
    const e = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function drawLive() {
    const W = 600, H = 180, L = 70, R = 10, T = 10, B = 25;
    const svg = el("svg", { viewBox: "0 0 " + W + " " + H, class: "live", role: "img", "aria-label": "offset (us)" });
    svg.append(el("rect", { width: W, height: H, class: "bg" }));
    const t0 = live[0][0], t1 = Math.max(live[live.length - 1][0], t0 + 1);
    let lo = Math.min(...live.map((p) => p[1])), hi = Math.max(...live.map((p) => p[1]));
    if (hi - lo < 1e-3) { lo -= 1; hi += 1; }
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
    svg.append(el("text", { x: 4, y: T + 10, class: "axis" }, hi.toFixed(3) + " us"));
    svg.append(el("text", { x: 4, y: H - B, class: "axis" }, lo.toFixed(3) + " us"));
    svg.append(el("text", { x: L, y: H - 6, class: "axis" }, utc(t0 * 1e9).slice(11)));
    svg.append(el("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "grid" }));
    if (lo < 0 && hi > 0) svg.append(el("line", { x1: L, x2: W - R, y1: y(0), y2: y(0), class: "zero" }));
    const pts = live.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ");
    svg.append(el("polyline", { points: pts, class: "offset" }));
    for (const p of live.slice(-1)) svg.append(el("circle", { cx: x(p[0]), cy: y(p[1]), r: 3, class: "offset" }));
    document.getElementById("live").replaceChildren(svg);
  }

  // The GPS sky: a polar plot, north up, azimuth clockwise, the horizon the outer ring and the zenith the
  // centre. Signal (C/N0, dB-Hz) as colour and size; used in the fix: filled, else a ring.
  const SNR_BANDS = [
    [40, "snr-40", "40 dB-Hz and more"],
    [30, "snr-30", "30-39"],
    [20, "snr-20", "20-29"],
    [1, "snr-0", "under 20"],
  ];
  const SYSTEM_LETTERS = { GPS: "G", SBAS: "S", GLONASS: "R", Galileo: "E", BeiDou: "C", QZSS: "J", NavIC: "I" };

  function band(snr) {
    if (snr === null || snr === undefined || snr <= 0) return "snr-none";
    for (const [low, cls] of SNR_BANDS) if (snr >= low) return cls;
    return "snr-none";
  }

  function note(text) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = text;
    return p;
  }

  function drawSky(g) {
    const box = document.getElementById("sky");
    if (!g) {
      box.replaceChildren(note("no receiver configured"));
      return;
    }
    const sky = g.sky || [];
    if (!sky.length) {
      box.replaceChildren(note("no satellites reported (yet): the receiver sends no GSV, or none lately"));
      return;
    }
    const S = 320, C = S / 2, R = C - 26;
    const svg = el("svg", { viewBox: "0 0 " + S + " " + S, class: "sky", role: "img",
      "aria-label": "satellites by azimuth and elevation" });
    for (const e of [0, 30, 60]) {
      svg.append(el("circle", { cx: C, cy: C, r: (R * (90 - e)) / 90, class: "ring" }));
      if (e) svg.append(el("text", { x: C + 3, y: C - (R * (90 - e)) / 90 + 11, class: "axis" }, e + "\u00b0"));
    }
    svg.append(el("line", { x1: C - R, x2: C + R, y1: C, y2: C, class: "ring" }));
    svg.append(el("line", { x1: C, x2: C, y1: C - R, y2: C + R, class: "ring" }));
    for (const [label, x, y] of [["N", C, C - R - 8], ["E", C + R + 12, C + 4], ["S", C, C + R + 18], ["W", C - R - 12, C + 4]]) {
      svg.append(el("text", { x: x, y: y, class: "compass" }, label));
    }
    let placed = 0;
    for (const s of sky) {
      if (s.elevation_deg === null || s.azimuth_deg === null) continue;
      const r = (R * (90 - Math.max(0, Math.min(90, s.elevation_deg)))) / 90;
      const a = (s.azimuth_deg * Math.PI) / 180;
      const x = C + r * Math.sin(a), y = C - r * Math.cos(a);
      const size = 5 + Math.min(Math.max(s.snr_dbhz || 0, 0), 50) / 6;
      const name = (SYSTEM_LETTERS[s.system] || "?") + s.prn;
      const dot = el("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: size.toFixed(1),
        class: "sat " + band(s.snr_dbhz) + (s.used ? " used" : "") });
      dot.append(el("title", {}, s.system + " " + s.prn + ": elevation " + s.elevation_deg + "\u00b0, azimuth " +
        s.azimuth_deg + "\u00b0, " + (s.snr_dbhz ? s.snr_dbhz + " dB-Hz" : "not tracked") +
        (s.used ? ", used in the fix" : "")));
      svg.append(dot, el("text", { x: (x + size + 1).toFixed(1), y: (y + 4).toFixed(1), class: "prn" }, name));
      placed += 1;
    }
    const legend = document.createElement("ul");
    legend.className = "legend";
    for (const [, cls, words] of SNR_BANDS.concat([[0, "snr-none", "no signal"]])) {
      const li = document.createElement("li");
      const sw = document.createElement("span");
      sw.className = "swatch " + cls;
      li.append(sw, words);
      legend.append(li);
    }
    const used = sky.filter((s) => s.used).length;
    const summary = note(sky.length + " in view, " + used + " used (filled; a ring: not used)" +
      (placed < sky.length ? ", " + (sky.length - placed) + " without a position" : "") +
      "; larger is louder; as of " + utc(g.sky_ns).slice(11));
    box.replaceChildren(svg, legend, summary);
  }

  let plotAt = Date.now();

  async function refresh() {
    try {
      const r = await fetch("/status.json", { cache: "no-store" });
      const data = await r.json();
      if (!r.ok) throw new Error(data.error || r.statusText);
      render(data);
    } catch (e) {
      const head = document.getElementById("headline");
      head.textContent = "no status: " + e.message;
      head.className = "critical";
    }
    if (Date.now() - plotAt > 60000) { // the day's plot: once a minute
      plotAt = Date.now();
      document.getElementById("plot").src = "/plot.svg?t=" + plotAt;
    }
  }

  const every = Number(document.body.dataset.refreshMs) || 5000;
  refresh();
  setInterval(refresh, every);
})();
