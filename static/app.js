// Live speech translation page: microphone → WSS /v1/stream (protocol v1) → live transcript.
import { captureMicrophone } from './capture.js';
import { Transcript } from './transcript.js';

const $ = (sel) => document.querySelector(sel);
const FATAL_CLOSES = new Set([1000, 1003, 1008, 1009]);  // no point reconnecting after these
const MAX_RETRIES = 5;

const ui = {
  conn: $('#conn'), error: $('#error'), start: $('#start'), stop: $('#stop'), level: $('#level'),
  source: $('#source'), echo: $('#echo'), noise: $('#noise'),
};
const transcript = new Transcript($('#transcript'));
let ws = null;
let capture = null;
let running = false;
let live = false;  // the current connection got 'ready': a drop then is worth reconnecting
let retries = 0;
let retryTimer = null;

function setConn(state, text) { ui.conn.dataset.state = state; ui.conn.textContent = text; }
function showError(text) { ui.error.hidden = !text; ui.error.textContent = text || ''; }
function targets() { return [...document.querySelectorAll('input[name=target]:checked')].map((el) => el.value); }

// The page passes its own ?token= (if any) on to the gateway.
function gatewayUrl(path) {
  const url = new URL(path, location.href);
  const token = new URLSearchParams(location.search).get('token');
  if (token) url.searchParams.set('token', token);
  return url;
}

function streamUrl() {
  const url = gatewayUrl('v1/stream');
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return url;
}

function connect() {
  setConn('connecting', retries ? `Reconnecting (attempt ${retries})…` : 'Connecting…');
  const socket = new WebSocket(streamUrl());
  ws = socket;
  socket.binaryType = 'arraybuffer';
  socket.onopen = () => socket.send(JSON.stringify({
    type: 'start', source_language: ui.source.value, targets: targets(), partials: true,
    audio: { encoding: capture.encoding, sample_rate: capture.sampleRate, channels: 1 },
  }));
  socket.onmessage = (event) => handle(JSON.parse(event.data));
  socket.onclose = (event) => closed(socket, event);
}

function handle(msg) {
  switch (msg.type) {
    case 'ready':
      retries = 0;
      live = true;
      transcript.newConnection();
      setConn('live', 'Live: speak now');
      showError('');
      break;
    case 'transcript': transcript.transcript(msg); break;
    case 'translation': transcript.translation(msg); break;
    case 'error':
      showError(msg.segment !== undefined
        ? `Segment ${msg.segment} could not be translated into ${msg.target}: ${msg.message}`
        : `${msg.fatal ? 'The server refused the session' : 'Server message'}: ${msg.message}`);
      break;
    case 'end': setConn('idle', `Finished: ${msg.segments} segments, ${msg.audio_seconds.toFixed(1)} s of audio`); break;
  }
}

function closed(socket, event) {
  if (socket !== ws) return;
  ws = null;
  const wasLive = live;
  live = false;
  const refused = !wasLive && retries === 0;  // never got going: the server said no
  if (!running || refused || FATAL_CLOSES.has(event.code) || retries >= MAX_RETRIES) {
    if (running) stopCapture();
    if (event.code !== 1000) setConn('error', `Disconnected (${event.code}${event.reason ? ': ' + event.reason : ''})`);
    return;
  }
  retries += 1;
  const delay = Math.min(16, 2 ** (retries - 1));
  setConn('reconnecting', `Connection lost; reconnecting in ${delay} s (your transcript is kept)`);
  retryTimer = setTimeout(connect, delay * 1000);
}

function sendAudio(chunk) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(chunk);
}

async function start() {
  showError('');
  ui.start.disabled = true;
  try {
    capture = await captureMicrophone({
      echoCancellation: ui.echo.checked, noiseSuppression: ui.noise.checked,
      onChunk: sendAudio, onLevel: (level) => { ui.level.value = Math.min(1, level * 4); },
    });
  } catch (err) {
    showError(`Microphone unavailable: ${err.message}`);
    ui.start.disabled = false;
    return;
  }
  running = true;
  retries = 0;
  ui.stop.disabled = false;
  connect();
}

function stopCapture() {
  running = false;
  clearTimeout(retryTimer);
  if (capture) capture.stop();
  capture = null;
  ui.level.value = 0;
  ui.start.disabled = false;
  ui.stop.disabled = true;
}

function stop() {
  const socket = ws;
  stopCapture();
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: 'stop' }));
    setConn('connecting', 'Finishing the last segment…');
  }
}

async function translateTyped(event) {
  event.preventDefault();
  const input = $('#typed-text');
  const text = input.value.trim();
  if (!text) return;
  const source = ui.source.value; // 'auto': the gateway detects the text's language
  if (ws && ws.readyState === WebSocket.OPEN && running) {
    ws.send(JSON.stringify({ type: 'text', text, source_language: source }));
  } else {
    const response = await fetch(gatewayUrl('v1/translate'), {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text, source_language: source, targets: targets() }),
    });
    const body = await response.json();
    if (!response.ok) { showError(`Translation failed: ${body.message}`); return; }
    transcript.typed(text, body.source_language, body.translations);
  }
  input.value = '';
}

function targetsChanged() {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'config', targets: targets() }));
}

function download(name, text, type) {
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

ui.start.addEventListener('click', start);
ui.stop.addEventListener('click', stop);
$('#typed').addEventListener('submit', translateTyped);
$('#targets').addEventListener('change', targetsChanged);
$('#copy').addEventListener('click', () => navigator.clipboard.writeText(transcript.toText()));
$('#dl-txt').addEventListener('click', () => download('transcript.txt', transcript.toText(), 'text/plain'));
$('#dl-srt').addEventListener('click', () => download('transcript.srt', transcript.toSubtitles('srt'), 'application/x-subrip'));
$('#dl-vtt').addEventListener('click', () => download('transcript.vtt', transcript.toSubtitles('vtt'), 'text/vtt'));
window.addEventListener('offline', () => { if (ws) ws.close(4000, 'browser offline'); });
