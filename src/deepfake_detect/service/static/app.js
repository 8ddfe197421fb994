/* deepfake-detect web page: upload with progress, then the verdict, per-face timelines and heatmaps.
   Plain browser JavaScript, no libraries, no network access beyond this server. */
"use strict";

const $ = (id) => document.getElementById(id);
const state = { limits: null, threshold: 0.5 };

function setStatus(text, isError) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

function fmt(value, digits) {
  return typeof value === "number" && isFinite(value) ? value.toFixed(digits) : "–";
}

function fillFacts(dl, pairs) {
  dl.replaceChildren();
  for (const [name, value] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = name;
    dd.textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
    dl.append(dt, dd);
  }
}

async function loadServerInfo() {
  try {
    const [health, model] = await Promise.all([
      fetch("/v1/health").then((r) => r.json()),
      fetch("/v1/model").then((r) => r.json()),
    ]);
    state.limits = health.limits;
    if (typeof model.threshold === "number") state.threshold = model.threshold;
    $("limits").textContent = `Up to ${health.limits.max_upload_mb} MB and ${health.limits.max_duration_s} s.`
      + " Nothing leaves this server: the video is analysed here and deleted.";
    fillFacts($("model-info"), Object.entries(model).filter(([, v]) => typeof v !== "object" || v === null));
    const warnings = Array.isArray(model.warnings) ? model.warnings : [];
    $("model-warnings").textContent = warnings.join(" ");
    $("model-warnings").hidden = warnings.length === 0;
  } catch (err) {
    setStatus("Could not reach the server: " + err, true);
  }
}

function upload(file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.open("POST", "/v1/detect");
    xhr.responseType = "json";
    xhr.upload.onprogress = (event) => {
      if (!event.lengthComputable) return;
      const percent = Math.round((100 * event.loaded) / event.total);
      $("progress").value = percent;
      $("progress-text").textContent = percent + "%";
    };
    xhr.upload.onload = () => {
      $("progress-label").textContent = "Uploaded";
      setStatus("Analysing the video…");
    };
    xhr.onload = () => resolve({ status: xhr.status, body: xhr.response, retryAfter: xhr.getResponseHeader("Retry-After") });
    xhr.onerror = () => reject(new Error("the connection failed"));
    xhr.send(form);
  });
}

async function onSubmit(event) {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) { setStatus("Choose a video file first.", true); $("file").focus(); return; }
  if (state.limits && file.size > state.limits.max_upload_bytes) {
    setStatus(`This file is ${(file.size / 2 ** 20).toFixed(1)} MB; the limit is ${state.limits.max_upload_mb} MB.`, true);
    return;
  }
  $("submit").disabled = true;
  $("result").hidden = true;
  $("progress-block").hidden = false;
  $("progress-label").textContent = "Uploading";
  $("progress").value = 0;
  setStatus(`Uploading ${file.name}…`);
  const started = performance.now();
  try {
    const reply = await upload(file);
    if (reply.status === 200) {
      showResult(reply.body);
      setStatus(`Done in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
    } else {
      const detail = reply.body && reply.body.detail ? reply.body.detail : "unexpected answer";
      const retry = reply.retryAfter ? ` Try again in ${reply.retryAfter} s.` : "";
      setStatus(`Error ${reply.status}: ${detail}.${retry}`, true);
    }
  } catch (err) {
    setStatus("Upload failed: " + err.message, true);
  } finally {
    $("submit").disabled = false;
  }
}

const VERDICTS = {
  ok: null,
  no_face: ["No face found", "No face was detected in this video, so there is nothing to judge."],
  too_short: ["Too short", "Faces were seen, but no face stayed long enough in view to be judged."],
};

function showResult(body) {
  const video = body.videos[0];
  if (typeof video.threshold === "number") state.threshold = video.threshold;
  const label = $("verdict-label");
  const special = VERDICTS[video.status];
  label.className = "verdict-label " + (special ? "none" : video.label === "fake" ? "fake" : "real");
  label.textContent = special ? special[0] : video.label === "fake" ? "Likely FAKE" : "Likely REAL";
  $("verdict-prob").textContent = video.fake_probability == null ? ""
    : `fake probability ${fmt(video.fake_probability, 3)} (threshold ${fmt(state.threshold, 2)})`;
  $("verdict-note").textContent = special ? special[1] : (video.error || "");
  const info = video.info || {};
  fillFacts($("video-info"), [
    ["File", video.path],
    ["Size", info.width && info.height ? `${info.width} × ${info.height}` : null],
    ["Duration", info.duration != null ? fmt(info.duration, 1) + " s" : null],
    ["Frames used", info.frames_used],
    ["Faces", (video.faces || []).length],
    ["Time", video.timings && video.timings.total != null ? fmt(video.timings.total, 2) + " s" : null],
  ]);
  const faces = $("faces");
  faces.replaceChildren();
  (video.faces || []).forEach((face, i) => addFaceCard(faces, face, i, info.duration));
  $("result").hidden = false;
  $("result-title").focus({ preventScroll: true });
}

function addFaceCard(container, face, index, duration) {
  // importNode (not cloneNode): the copy belongs to this document, so canvas text gets its fonts;
  // and it is attached before drawing.
  const node = document.importNode($("face-template").content.firstElementChild, true);
  container.append(node);
  node.querySelector(".face-title").textContent = `Face ${index + 1}`;
  node.querySelector(".face-summary").textContent = `fake probability ${fmt(face.fake_probability, 3)}`
    + ` · ${face.n_frames} frames · ${fmt(face.start_s, 1)}–${fmt(face.end_s, 1)} s`;
  if (face.thumbnail_jpeg) {
    const img = node.querySelector(".thumb");
    img.src = "data:image/jpeg;base64," + face.thumbnail_jpeg;
    img.alt = `Face ${index + 1}, first crop`;
    img.hidden = false;
  }
  const timeline = node.querySelector(".timeline");
  drawTimeline(timeline, face.timeline || [], duration || face.end_s || 1);
  timeline.setAttribute("aria-label", `Timeline of face ${index + 1}: `
    + (face.timeline || []).map((p) => `${fmt(p.start_s, 1)}–${fmt(p.end_s, 1)} s: ${fmt(p.fake_probability, 2)}`).join("; "));
  const heat = node.querySelector(".heatmap");
  if (face.similarity && face.similarity.length) {
    const [lo, hi] = drawHeatmap(heat, face.similarity);
    drawLegend(node.querySelector(".legend"), lo, hi);
    heat.setAttribute("aria-label", `Similarity heatmap of ${face.similarity.length} frames of face ${index + 1},`
      + ` cosine similarity from ${lo.toFixed(3)} to ${hi.toFixed(3)}`);
  } else {
    node.querySelector(".chart.heat").hidden = true;
  }
}

function drawTimeline(canvas, points, duration) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 44, R = 12, T = 12, B = 32;
  const x = (t) => L + ((W - L - R) * t) / Math.max(duration, 1e-6);
  const y = (p) => T + (H - T - B) * (1 - p);
  ctx.clearRect(0, 0, W, H);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#5b6475";
  ctx.strokeStyle = "#d8dce3";
  ctx.lineWidth = 1;
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    ctx.beginPath(); ctx.moveTo(L, y(p)); ctx.lineTo(W - R, y(p)); ctx.stroke();
    ctx.fillText(p.toFixed(2), 6, y(p) + 4);
  }
  const step = niceStep(duration);
  for (let t = 0; t <= duration + 1e-9; t += step) {
    ctx.textAlign = t === 0 ? "left" : t + step > duration + 1e-9 ? "right" : "center";
    ctx.fillText(t.toFixed(step < 1 ? 1 : 0) + " s", x(t), H - 10);
  }
  ctx.textAlign = "left";
  ctx.setLineDash([6, 4]);
  ctx.strokeStyle = "#8a5a00";
  ctx.beginPath(); ctx.moveTo(L, y(state.threshold)); ctx.lineTo(W - R, y(state.threshold)); ctx.stroke();
  ctx.setLineDash([]);
  for (const point of points) {  // one bar per window, coloured by the side of the threshold
    const fake = point.fake_probability >= state.threshold;
    ctx.fillStyle = fake ? "rgba(179, 38, 30, 0.25)" : "rgba(30, 123, 52, 0.25)";
    ctx.fillRect(x(point.start_s), y(point.fake_probability), Math.max(2, x(point.end_s) - x(point.start_s)),
      y(0) - y(point.fake_probability));
  }
  ctx.strokeStyle = "#1f5fbf";
  ctx.lineWidth = 2;
  ctx.beginPath();
  points.forEach((point, i) => {
    const px = x((point.start_s + point.end_s) / 2), py = y(point.fake_probability);
    if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
  });
  ctx.stroke();
  ctx.fillStyle = "#1f5fbf";
  for (const point of points) {
    ctx.beginPath();
    ctx.arc(x((point.start_s + point.end_s) / 2), y(point.fake_probability), 3.5, 0, 2 * Math.PI);
    ctx.fill();
  }
  canvas.dataset.drawn = String(points.length);
}

function niceStep(duration) {
  for (const step of [0.5, 1, 2, 5, 10, 30, 60, 120, 300]) if (duration / step <= 8) return step;
  return 600;
}

const STOPS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];  // viridis-like

function colour(t) {  // t in [0, 1] -> [r, g, b]
  const x = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x)), f = x - i;
  return STOPS[i].map((c, k) => Math.round(c + f * (STOPS[i + 1][k] - c)));
}

function valueRange(matrix) {  // the colour scale spans the matrix's own values (cosines often sit near 1)
  let lo = Infinity, hi = -Infinity;
  for (const row of matrix) for (const v of row) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return hi - lo > 1e-9 ? [lo, hi] : [lo - 1e-3, hi + 1e-3];
}

function drawHeatmap(canvas, matrix) {
  const n = matrix.length;
  const [lo, hi] = valueRange(matrix);
  const cells = document.createElement("canvas");
  cells.width = n; cells.height = n;
  const cellCtx = cells.getContext("2d");
  const image = cellCtx.createImageData(n, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const [r, g, b] = colour((matrix[i][j] - lo) / (hi - lo));
      image.data.set([r, g, b, 255], 4 * (i * n + j));
    }
  }
  cellCtx.putImageData(image, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(cells, 0, 0, canvas.width, canvas.height);
  canvas.dataset.drawn = String(n);
  return [lo, hi];
}

function drawLegend(canvas, lo, hi) {
  const ctx = canvas.getContext("2d");
  const bar = 12, top = 14, bottom = canvas.height - 14;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  for (let y = top; y <= bottom; y++) {
    const [r, g, b] = colour(1 - (y - top) / (bottom - top));
    ctx.fillStyle = `rgb(${r}, ${g}, ${b})`;
    ctx.fillRect(0, y, bar, 1);
  }
  ctx.fillStyle = "#5b6475";
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(hi.toFixed(3), 0, 10);
  ctx.fillText(lo.toFixed(3), 0, canvas.height - 2);
}

document.addEventListener("DOMContentLoaded", () => {
  $("upload-form").addEventListener("submit", onSubmit);
  $("result-title").tabIndex = -1;
  loadServerInfo();
});
