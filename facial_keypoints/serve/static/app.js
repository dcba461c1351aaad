// The page of `facial-keypoints serve`: plain JavaScript, no build step, nothing from outside this server.
// Photo mode posts the photo to /v1/detect and draws what comes back; camera mode sends JPEG frames over
// the WebSocket /v1/track and draws the tracked faces. Where the server wants its API key, the page asks
// for it once and keeps it for this tab (sessionStorage).
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "fkd-api-key";
let apiKey = sessionStorage.getItem(KEY_STORE) || "";
let lastRecord = null;

// ---- the key ---------------------------------------------------------------------------------------
function askKey() {
  const given = window.prompt("This server needs its API key:");
  if (given === null) return false;
  apiKey = given.trim();
  sessionStorage.setItem(KEY_STORE, apiKey);
  return apiKey !== "";
}

async function api(path, options = {}) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const headers = Object.assign({}, options.headers || {});
    if (apiKey) headers.Authorization = "Bearer " + apiKey;
    const response = await fetch(path, Object.assign({}, options, { headers }));
    if (response.status !== 401 || attempt === 1 || !askKey()) return response;
  }
}

async function errorText(response) {
  try {
    const body = await response.json();
    return `${response.status}: ${typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)}`;
  } catch (e) {
    return `${response.status} ${response.statusText}`;
  }
}

// ---- drawing ---------------------------------------------------------------------------------------
const COLOURS = { brow: "#ff9f1c", eye: "#2ec4f1", pupil: "#2ec4f1", nose: "#ffe14d", lip: "#ff4fa3", mouth: "#ff4fa3" };

function colourOf(name) {
  for (const part in COLOURS) if (name.includes(part)) return COLOURS[part];
  return "#ffffff";
}

function drawFace(ctx, face, scale, label) {
  // scale: image pixels per screen pixel, so that lines and labels look the same on any photo
  const unit = Math.max(1, scale);
  const [x1, y1, x2, y2] = face.box;
  const radius = Math.max(1.5 * unit, Math.min(3 * unit, Math.min(x2 - x1, y2 - y1) / 30));
  ctx.lineWidth = 1.5 * unit;
  ctx.strokeStyle = "#25d366";
  ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
  for (const [name, [x, y]] of Object.entries(face.keypoints || {})) {
    ctx.beginPath();
    ctx.arc(x, y, radius, 0, 2 * Math.PI);
    ctx.fillStyle = colourOf(name);
    ctx.fill();
    ctx.lineWidth = radius / 3;
    ctx.strokeStyle = "#000";
    ctx.stroke();
  }
  ctx.font = `600 ${Math.round(11 * unit)}px system-ui, sans-serif`;
  const width = ctx.measureText(label).width + 6 * unit;
  const height = 15 * unit;
  const top = y1 - height >= 0 ? y1 - height : y2;
  ctx.fillStyle = "rgba(37, 211, 102, 0.85)";
  ctx.fillRect(x1, top, width, height);
  ctx.fillStyle = "#000";
  ctx.fillText(label, x1 + 3 * unit, top + 11.5 * unit);
}

// ---- photo mode ------------------------------------------------------------------------------------
function showFaces(record) {
  const faces = record.faces || [];
  $("face-count").textContent = `${faces.length} face${faces.length === 1 ? "" : "s"}`;
  $("face-count").dataset.count = String(faces.length);
  const fields = [];
  for (const face of faces) for (const key of Object.keys(face)) if (key !== "keypoints" && !fields.includes(key)) fields.push(key);
  $("faces").tHead.innerHTML = "<tr><th>#</th>" + fields.map((f) => `<th>${f.replace(/[&<>"]/g, "")}</th>`).join("") + "</tr>";
  const escape = (text) => String(text).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const format = (v) => Array.isArray(v) ? escape(v.join(", ")) : (v !== null && typeof v === "object")
    ? `<details><summary>${Object.keys(v).length} values</summary>` +
      Object.entries(v).map(([k, x]) => `${escape(k)} ${format(x)}`).join("<br>") + "</details>"
    : escape(v);
  $("faces").tBodies[0].innerHTML = faces.map((face, n) =>
    `<tr><td>${n}</td>` + fields.map((f) => `<td>${f in face ? format(face[f]) : ""}</td>`).join("") + "</tr>").join("");
  $("json").textContent = JSON.stringify(record, null, 1);
  $("copy").disabled = false;
}

function drawPhoto(image, record) {
  const canvas = $("photo-canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0);
  const scale = image.naturalWidth / Math.max(1, canvas.getBoundingClientRect().width);
  (record.faces || []).forEach((face, n) => drawFace(ctx, face, scale, `${n}  ${face.score.toFixed(2)}`));
  canvas.dataset.drawn = String((record.faces || []).length);
}

async function detectPhoto(file) {
  $("status").textContent = `${file.name}: finding faces …`;
  $("face-count").textContent = "…";
  const url = URL.createObjectURL(file);
  const image = new Image();
  const loaded = new Promise((resolve, reject) => { image.onload = resolve; image.onerror = reject; });
  image.src = url;
  const form = new FormData();
  form.append("file", file, file.name);
  const started = performance.now();
  const response = await api("/v1/detect", { method: "POST", body: form });
  if (!response.ok) {
    $("status").textContent = `${file.name}: ${await errorText(response)}`;
    $("face-count").textContent = "no result";
    return;
  }
  lastRecord = await response.json();
  const ms = performance.now() - started;
  try { await loaded; } catch (e) { $("status").textContent = `${file.name}: this browser cannot show the photo`; }
  drawPhoto(image, lastRecord);
  URL.revokeObjectURL(url);
  showFaces(lastRecord);
  $("status").textContent = `${file.name}: ${lastRecord.width}×${lastRecord.height}, ${ms.toFixed(0)} ms`;
}

function setUpPhoto() {
  const drop = $("drop");
  $("file").addEventListener("change", () => { if ($("file").files[0]) detectPhoto($("file").files[0]); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files[0]) detectPhoto(e.dataTransfer.files[0]);
  });
  $("copy").addEventListener("click", async () => {
    const text = JSON.stringify(lastRecord, null, 1);
    try {
      await navigator.clipboard.writeText(text);
    } catch (e) {  // no clipboard API (an http page on another host): select the text instead
      const range = document.createRange();
      range.selectNodeContents($("json"));
      $("json").parentElement.open = true;
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      document.execCommand("copy");
    }
    $("copied").textContent = "copied";
    setTimeout(() => { $("copied").textContent = ""; }, 1500);
  });
}

// ---- camera mode -----------------------------------------------------------------------------------
const camera = { stream: null, ws: null, running: false, sent: 0, snapshots: new Map(), replies: [], t0: 0 };

function trackSocket() {
  const base = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/track`;
  try {
    return new WebSocket(base, apiKey ? ["fkd.track", "bearer." + apiKey] : ["fkd.track"]);
  } catch (e) {  // a key that is no valid subprotocol token: send it as a query parameter
    return new WebSocket(`${base}?key=${encodeURIComponent(apiKey)}`, ["fkd.track"]);
  }
}

function sendFrame() {
  const video = $("video");
  if (!camera.running || camera.ws.readyState !== WebSocket.OPEN || camera.snapshots.size >= 2 || !video.videoWidth) return;
  const snapshot = document.createElement("canvas");
  snapshot.width = video.videoWidth;
  snapshot.height = video.videoHeight;
  snapshot.getContext("2d").drawImage(video, 0, 0);
  const frame = camera.sent++;
  const time = (performance.now() - camera.t0) / 1000;
  camera.snapshots.set(frame, snapshot);
  snapshot.toBlob((blob) => {
    if (!camera.running || camera.ws.readyState !== WebSocket.OPEN) return;
    camera.ws.send(String(time));
    camera.ws.send(blob);
  }, "image/jpeg", 0.8);
}

function onTrack(event) {
  const line = JSON.parse(event.data);
  const snapshot = camera.snapshots.get(line.frame);
  for (const frame of [...camera.snapshots.keys()]) if (frame <= line.frame) camera.snapshots.delete(frame);
  const now = performance.now();
  camera.replies.push(now);
  while (camera.replies.length && now - camera.replies[0] > 2000) camera.replies.shift();
  if (camera.replies.length > 1) {
    const fps = (camera.replies.length - 1) / ((now - camera.replies[0]) / 1000);
    $("fps").textContent = `${fps.toFixed(1)} fps`;
    $("fps").dataset.fps = fps.toFixed(2);
  }
  if (line.error) {
    $("camera-status").textContent = `frame ${line.frame}: ${line.status} ${line.error}`;
  } else if (snapshot) {
    const canvas = $("camera-canvas");
    if (canvas.width !== snapshot.width) { canvas.width = snapshot.width; canvas.height = snapshot.height; }
    const ctx = canvas.getContext("2d");
    ctx.drawImage(snapshot, 0, 0);
    const scale = canvas.width / Math.max(1, canvas.getBoundingClientRect().width);
    for (const face of line.faces) drawFace(ctx, face, scale, `id ${face.id}`);
    $("track-count").textContent = `${line.faces.length} face${line.faces.length === 1 ? "" : "s"}`;
    $("track-ids").textContent = line.faces.length ? "ids " + line.faces.map((f) => f.id).join(", ") : "";
    $("track-ids").dataset.ids = line.faces.map((f) => f.id).join(",");
  }
}

// A frame is sent as the camera gives it, while fewer than two are on their way (so a slow server gets
// the newest frame, never a backlog).
function eachVideoFrame() {
  if (!camera.running) return;
  sendFrame();
  const video = $("video");
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(eachVideoFrame);
  else setTimeout(eachVideoFrame, 1000 / 30);
}

async function startCamera() {
  $("camera-start").disabled = true;
  try {
    camera.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (e) {
    $("camera-status").textContent = `no camera: ${e.message || e.name}`;
    $("camera-start").disabled = false;
    return;
  }
  const video = $("video");
  video.srcObject = camera.stream;
  await video.play();
  Object.assign(camera, { running: true, sent: 0, snapshots: new Map(), replies: [], t0: performance.now() });
  camera.ws = trackSocket();
  let opened = false;
  camera.ws.onopen = () => { opened = true; $("camera-status").textContent = "tracking"; eachVideoFrame(); };
  camera.ws.onmessage = onTrack;
  camera.ws.onclose = async (event) => {
    const wasRunning = camera.running, key = apiKey;
    stopCamera();
    if (!wasRunning) return;
    $("camera-status").textContent = `the connection closed (${event.code} ${event.reason || ""})`;
    if (!opened && (await api("/v1/info")).ok && apiKey !== key) startCamera();  // refused for its key: asked once
  };
  $("camera-stop").disabled = false;
}

function stopCamera() {
  camera.running = false;
  if (camera.ws && camera.ws.readyState <= WebSocket.OPEN) camera.ws.close();
  if (camera.stream) camera.stream.getTracks().forEach((t) => t.stop());
  camera.stream = null;
  $("camera-start").disabled = false;
  $("camera-stop").disabled = true;
}

// ---- modes, and what the server says about itself ---------------------------------------------------
function setMode(mode) {
  $("photo-mode").hidden = mode !== "photo";
  $("camera-mode").hidden = mode !== "camera";
  $("mode-photo").classList.toggle("active", mode === "photo");
  $("mode-camera").classList.toggle("active", mode === "camera");
  if (mode !== "camera") stopCamera();
}

async function loadInfo() {
  const response = await api("/v1/info");
  if (!response.ok) { $("model").textContent = await errorText(response); return; }
  const info = await response.json();
  $("model").textContent = `${info.model.split("/").pop()} (${info.backend}), detector ${info.detector}`;
}

setUpPhoto();
$("mode-photo").addEventListener("click", () => setMode("photo"));
$("mode-camera").addEventListener("click", () => setMode("camera"));
$("camera-start").addEventListener("click", startCamera);
$("camera-stop").addEventListener("click", stopCamera);
loadInfo();
