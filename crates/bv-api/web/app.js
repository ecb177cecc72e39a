// BetterVideo's web app: one page, hash routes, the HTTPS API underneath.
//
// Rules that keep it safe under its Content-Security-Policy (see web.rs):
// no inline script or style, no eval, and no HTML strings: every node is made
// with h() and every user-controlled string goes in as text, never as markup.

import { Upload, pending, forgetAll, fingerprint } from '/assets/tus.js';

// ---------------------------------------------------------------- DOM helpers

/** h('tag.class', {attrs, on: {event: fn}}, ...children) */
function h(spec, props, ...kids) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag);
  if (classes.length) el.className = classes.join(' ');
  if (props && (typeof props !== 'object' || props instanceof Node || Array.isArray(props))) {
    kids.unshift(props);
    props = null;
  }
  for (const [k, v] of Object.entries(props || {})) {
    if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'text') el.textContent = v;
    else if (v === true) el.setAttribute(k, '');
    else if (v !== false && v != null) el.setAttribute(k, String(v));
  }
  for (const kid of kids.flat()) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

const $ = (sel) => document.querySelector(sel);
const main = () => $('#main');

function bytes(n) {
  if (n == null) return '—';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${u[i]}`;
}

function duration(s) {
  if (s == null || !isFinite(s)) return '—';
  s = Math.round(s);
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '—';
}

let noticeAt = null;

/** Shows a message until the person leaves the page it belongs to (`where`). */
function notice(text, kind = 'info', where = location.hash) {
  const n = $('#notice');
  n.textContent = text;
  n.className = kind;
  n.hidden = !text;
  noticeAt = where;
}

function credits(n) {
  return `${n.toLocaleString()} credit${n === 1 ? '' : 's'}`;
}

/** Asks a yes/no question in the page's own dialog (no window.confirm). */
function confirmDialog(title, text, action) {
  const d = $('#confirm');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = action;
  d.returnValue = '';
  d.showModal();
  return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true }));
}

// ---------------------------------------------------------------- session and API

const session = {
  get csrf() { return localStorage.getItem('bv.csrf'); },
  get idleSeconds() { return Number(localStorage.getItem('bv.idle') || 0); },
  save(csrf, idle) {
    localStorage.setItem('bv.csrf', csrf);
    localStorage.setItem('bv.idle', String(idle));
  },
  clear() {
    localStorage.removeItem('bv.csrf');
    localStorage.removeItem('bv.idle');
    forgetAll();
  },
};

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let lastRequest = Date.now();

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = session.csrf || '';
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  lastRequest = Date.now();
  if (r.status === 204) return null;
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    const e = data && data.error ? data.error : { code: 'http_' + r.status, message: `The server answered ${r.status}.` };
    if (r.status === 401 && path !== '/v1/session') {
      signedOut('Your session has ended. Sign in again to go on.');
    }
    throw new ApiError(r.status, e.code, e.message);
  }
  return data;
}

// ---------------------------------------------------------------- idle sign-out

let lastInput = Date.now();
let uploadsRunning = 0;
for (const ev of ['pointerdown', 'keydown', 'wheel', 'touchstart']) {
  addEventListener(ev, () => {
    lastInput = Date.now();
    // Activity without requests still keeps the server's session alive.
    const idle = session.idleSeconds * 1000;
    if (session.csrf && idle && Date.now() - lastRequest > idle / 2) api('GET', '/v1/me').catch(() => {});
  }, { passive: true, capture: true });
}

setInterval(async () => {
  const idle = session.idleSeconds * 1000;
  if (!session.csrf || !idle || uploadsRunning > 0) {
    lastInput = uploadsRunning > 0 ? Date.now() : lastInput;
    return;
  }
  // A little early (a quarter of the timeout, at most 5 s), so the page signs
  // out before the server would refuse the sign-out itself.
  if (Date.now() - lastInput > idle - Math.min(5000, idle / 4)) {
    const mins = Math.round(session.idleSeconds / 60);
    await signOut(`You were signed out after ${mins >= 1 ? mins + ' min' : session.idleSeconds + ' s'} without activity.`);
  }
}, 500);

async function signOut(message) {
  if (session.csrf) await api('DELETE', '/v1/session').catch(() => {});
  signedOut(message);
}

function signedOut(message) {
  session.clear();
  stopLive();
  for (const u of uploads.values()) u.upload.pause();
  uploads.clear();
  uploadsRunning = 0;
  notice(message || '', message ? 'warn' : 'info', '#/signin');
  if (location.hash === '#/signin') route(); else location.hash = '#/signin';
}

// ---------------------------------------------------------------- views

const views = {};
let live = [];

function stopLive() {
  for (const stop of live) stop();
  live = [];
}

/** Re-runs fn every ms while the current view stays. */
function every(ms, fn) {
  if (!stillShown()) return;
  const t = setInterval(fn, ms);
  live.push(() => clearInterval(t));
}

/** The view the address names now. */
function viewFor(hash) {
  const [, name, id] = (hash || '#/videos').split('/');
  if (id && name === 'videos') return 'video';
  if (id && name === 'jobs') return 'job';
  return views[name] ? name : 'videos';
}

let renderingFor = null;

/** Whether the view being built still matches the address (a slow view that
 *  finishes after the person moved on must not paint over the new page). */
function stillShown() {
  return renderingFor === location.hash;
}

function render(name, ...nodes) {
  if (!stillShown()) return;
  const m = main();
  m.replaceChildren(...nodes);
  m.dataset.view = name;
  m.setAttribute('aria-busy', 'false');
  const title = m.querySelector('h1');
  document.title = title ? `${title.textContent} · BetterVideo` : 'BetterVideo';
}

function errorBox(e) {
  return h('p.error', { role: 'alert' }, e.message, e.code ? h('span.code', ` (${e.code})`) : null);
}

views.signin = async () => {
  const err = h('div');
  const form = h('form.card.narrow', { on: { submit: async (ev) => {
    ev.preventDefault();
    err.replaceChildren();
    const fd = new FormData(form);
    try {
      const s = await api('POST', '/v1/session', { login: fd.get('login'), password: fd.get('password') });
      session.save(s.csrf_token, s.idle_timeout_seconds);
      lastInput = Date.now();
      notice('');
      location.hash = '#/videos';
    } catch (e) {
      err.replaceChildren(errorBox(e));
    }
  } } },
    h('h1', 'Sign in'),
    h('label', { for: 'login' }, 'Login'),
    h('input', { id: 'login', name: 'login', autocomplete: 'username', required: true, autofocus: true }),
    h('label', { for: 'password' }, 'Password'),
    h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
    err,
    h('button', { type: 'submit' }, 'Sign in'),
    h('p.muted', 'Your videos are encrypted with a key of their own and are never shown to anyone else.'));
  render('signin', form);
};

function stateBadge(text, kind) {
  return h(`span.badge.${kind || text}`, text);
}

function videoStatus(v) {
  if (v.status === 'rejected') return stateBadge('rejected', 'failed');
  if (v.state === 'uploading') return stateBadge('uploading', 'running');
  if (v.status === 'probing') return stateBadge('examining', 'queued');
  return stateBadge('ready', 'succeeded');
}

function resolution(v) {
  const m = v.media;
  return m && m.width ? `${m.width}×${m.height}` : '—';
}

const RETENTION = { output: 'result kept for its retention period', original: 'original removed after its job', failed_input: 'kept for a retry after a failed job' };

/** When the retention sweeper deletes a video, and why ("Kept" when never). */
function deletion(v) {
  if (!v.delete_at) return h('span', 'Kept until you delete it');
  return h('span', { title: RETENTION[v.retention] || '' }, when(v.delete_at));
}

async function deleteVideo(v) {
  const ok = await confirmDialog(
    `Delete “${v.name}”?`,
    'Its encryption key is destroyed (crypto-shredding): nobody, including the operators of this service, can recover the video afterwards, and every link to it stops working at once.',
    'Delete forever');
  if (!ok) return false;
  await api('DELETE', `/v1/videos/${v.id}`);
  notice(`“${v.name}” was deleted and cannot be recovered.`);
  return true;
}

views.videos = async () => {
  const { videos } = await api('GET', '/v1/videos');
  const rows = videos.map((v) => h('tr',
    h('td', h('a', { href: `#/videos/${v.id}` }, v.name)),
    h('td.num', bytes(v.size_bytes)),
    h('td.num.wide', duration(v.media && v.media.duration_s)),
    h('td.num.wide', resolution(v)),
    h('td', videoStatus(v)),
    h('td.wide', deletion(v)),
    h('td.actions', h('button.secondary.small', { type: 'button', 'aria-label': `Delete ${v.name}`, on: { click: async () => {
      try { if (await deleteVideo(v)) route(); } catch (e) { notice(e.message, 'error'); }
    } } }, 'Delete'))));
  render('videos',
    h('div.head', h('h1', 'Videos'), h('a.button', { href: '#/upload' }, 'Upload a video')),
    videos.length
      ? h('div.scroll', h('table',
        h('thead', h('tr', ['Name', 'Size', 'Duration', 'Resolution', 'State', 'Deleted on', ''].map((c, i) => h(i === 2 || i === 3 || i === 5 ? 'th.wide' : 'th', { scope: 'col' }, c)))),
        h('tbody', rows)))
      : h('p.empty', 'No videos yet. ', h('a', { href: '#/upload' }, 'Upload your first one.')));
  if (videos.some((v) => v.status === 'probing')) every(2000, () => { if (main().dataset.view === 'videos') { stopLive(); views.videos(); } });
};

// Uploads outlive the upload view: moving around the app does not stop them.
const uploads = new Map();

function uploadCard(entry) {
  const { upload, file } = entry;
  const bar = h('progress', { max: file.size, value: upload.offset, 'aria-label': `Upload of ${file.name}` });
  const line = h('p.muted.progress-line', { 'aria-live': 'polite' });
  const pauseBtn = h('button.secondary.small', { type: 'button' }, 'Pause');
  const cancelBtn = h('button.secondary.small', { type: 'button' }, 'Cancel');
  const card = h('div.card.upload', h('strong', file.name), bar, line, h('div.actions', pauseBtn, cancelBtn));
  const paint = () => {
    bar.value = entry.sent;
    if (entry.done) {
      line.replaceChildren('Uploaded. It is being examined; ', h('a', { href: `#/videos/${entry.videoId}` }, 'open it'), ' to enhance it.');
      pauseBtn.hidden = cancelBtn.hidden = true;
      return;
    }
    if (entry.error) {
      line.replaceChildren(errorBox(entry.error));
      pauseBtn.textContent = 'Retry';
      return;
    }
    const pct = Math.floor((100 * entry.sent) / file.size);
    let text = `${pct}% · ${bytes(entry.sent)} of ${bytes(file.size)}`;
    if (upload.paused) text += ' · paused';
    else if (entry.speed > 0) text += ` · ${bytes(entry.speed)}/s · ${duration((file.size - entry.sent) / entry.speed)} left`;
    if (upload.resumedFrom) text += ` · resumed at ${bytes(upload.resumedFrom)}`;
    line.textContent = text;
    pauseBtn.textContent = upload.paused ? 'Resume' : 'Pause';
  };
  entry.paint = paint;
  pauseBtn.addEventListener('click', () => {
    if (upload.paused) { entry.error = null; running(entry, true); upload.start(); } else { upload.pause(); running(entry, false); }
    paint();
  });
  cancelBtn.addEventListener('click', async () => {
    running(entry, false);
    await upload.abort().catch(() => {});
    uploads.delete(entry.key);
    card.remove();
  });
  paint();
  return card;
}

function running(entry, on) {
  if (entry.running === on) return;
  entry.running = on;
  uploadsRunning += on ? 1 : -1;
}

function startUpload(file) {
  const key = fingerprint(file);
  if (uploads.has(key)) return;
  const entry = { key, file, sent: 0, speed: 0, samples: [], done: false, error: null, running: false };
  entry.upload = new Upload(file, {
    endpoint: '/v1/uploads',
    headers: () => ({ 'X-CSRF-Token': session.csrf || '' }),
    onProgress: (sent) => {
      const now = Date.now();
      entry.sent = sent;
      entry.samples.push([now, sent]);
      while (entry.samples.length > 2 && now - entry.samples[0][0] > 5000) entry.samples.shift();
      const [t0, s0] = entry.samples[0];
      entry.speed = now > t0 ? ((sent - s0) * 1000) / (now - t0) : 0;
      entry.paint && entry.paint();
    },
    onSuccess: (videoId) => {
      entry.done = true;
      entry.videoId = videoId;
      running(entry, false);
      entry.paint && entry.paint();
    },
    onError: (e) => {
      entry.error = e;
      running(entry, false);
      entry.paint && entry.paint();
    },
  });
  uploads.set(key, entry);
  running(entry, true);
  entry.upload.start();
}

views.upload = async () => {
  const input = h('input', { type: 'file', id: 'file', accept: 'video/*', multiple: true, class: 'visually-hidden' });
  const list = h('div.uploads');
  const addFiles = (files) => {
    for (const f of files) startUpload(f);
    paintList();
  };
  const paintList = () => {
    list.replaceChildren(...[...uploads.values()].map(uploadCard));
    const waiting = Object.entries(pending()).filter(([fp]) => !uploads.has(fp));
    if (waiting.length) {
      list.append(h('div.card.resume',
        h('h2', 'Unfinished uploads'),
        h('p.muted', 'Choose the same file again to go on where it stopped.'),
        h('ul', waiting.map(([, u]) => h('li', `${u.name} — ${bytes(u.offset || 0)} of ${bytes(u.size)} uploaded`)))));
    }
  };
  input.addEventListener('change', () => { addFiles(input.files); input.value = ''; });
  const zone = h('div.drop', {
    role: 'button', tabindex: '0', 'aria-describedby': 'drop-help',
    on: {
      click: () => input.click(),
      keydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); input.click(); } },
      dragover: (e) => { e.preventDefault(); zone.classList.add('over'); },
      dragleave: () => zone.classList.remove('over'),
      drop: (e) => { e.preventDefault(); zone.classList.remove('over'); addFiles(e.dataTransfer.files); },
    },
  }, h('strong', 'Drop videos here'), h('span', ' or '), h('label.link', { for: 'file' }, 'choose files'));
  render('upload',
    h('h1', 'Upload'),
    zone,
    h('p.muted', { id: 'drop-help' }, 'Uploads resume where they stopped if the connection drops or the page reloads. Files are encrypted as they arrive.'),
    input,
    list);
  paintList();
};

function jobProgress(j) {
  const total = j.frames_total || 0;
  return h('progress', { max: total || 1, value: total ? j.frames_done : 0, 'aria-label': 'Frames enhanced' });
}

async function openLink(id, name) {
  const l = await api('POST', `/v1/videos/${id}/links`, {});
  const a = h('a', { href: l.url, download: name || '' });
  document.body.append(a);
  a.click();
  a.remove();
}

async function preview(id, where) {
  const l = await api('POST', `/v1/videos/${id}/links`, {});
  where.replaceChildren(h('video', { controls: true, preload: 'metadata', src: l.url, 'aria-label': 'Preview' }));
}

views.video = async (id) => {
  const [v, { presets, models, codecs }, { jobs }] = await Promise.all([
    api('GET', `/v1/videos/${id}`), api('GET', '/v1/models'), api('GET', '/v1/jobs?limit=200')]);
  const mine = jobs.filter((j) => j.video_id === id && j.kind === 'enhance');
  const m = v.media || {};
  const player = h('div.player');
  const facts = h('dl.facts',
    h('dt', 'Size'), h('dd', bytes(v.size_bytes)),
    h('dt', 'Duration'), h('dd', duration(m.duration_s)),
    h('dt', 'Resolution'), h('dd', resolution(v)),
    h('dt', 'Frames'), h('dd', m.frames != null ? String(m.frames) : '—'),
    h('dt', 'Uploaded'), h('dd', when(v.created_at)),
    h('dt', 'State'), h('dd', videoStatus(v)),
    h('dt', 'Deleted on'), h('dd', deletion(v), v.retention ? h('span.muted.small', ` (${RETENTION[v.retention] || v.retention})`) : null));
  const actions = h('div.actions',
    h('button', { type: 'button', on: { click: () => openLink(v.id, v.name).catch((e) => notice(e.message, 'error')) } }, 'Download'),
    h('button.secondary', { type: 'button', on: { click: () => preview(v.id, player).catch((e) => notice(e.message, 'error')) } }, 'Preview'),
    h('button.secondary', { type: 'button', on: { click: async () => {
      try { if (await deleteVideo(v)) location.hash = '#/videos'; } catch (e) { notice(e.message, 'error'); }
    } } }, 'Delete'));
  const parts = [h('h1', v.name), facts, actions, player];
  if (v.status === 'rejected') parts.push(h('p.error', `This file was rejected: ${v.rejected}`));
  else if (v.status === 'probing') {
    parts.push(h('p.muted', 'This video is being examined; it can be enhanced in a moment.'));
    every(2000, () => { stopLive(); views.video(id); });
  } else parts.push(enhanceForm(v, presets || [], models, codecs));
  if (mine.length) parts.push(h('h2', 'Jobs'), jobTable(mine));
  render('video', ...parts);
};

function enhanceForm(v, presets, models, codecs) {
  // A preset fills in model, scale and codec; changing any of them by hand
  // turns the choice into "Custom".
  const preset = h('select', { id: 'preset', name: 'preset' },
    presets.map((p) => h('option', { value: p.name }, p.title)),
    h('option', { value: '' }, 'Custom'));
  const presetNote = h('p.muted.small');
  const model = h('select', { id: 'model', name: 'model' },
    models.map((m) => h('option', { value: m.name }, m.title)));
  const note = h('p.muted.small');
  const scale = h('select', { id: 'scale', name: 'scale' });
  const codec = h('select', { id: 'codec', name: 'codec' },
    codecs.map((c) => h('option', { value: c }, { h264: 'H.264 (plays everywhere)', hevc: 'H.265 / HEVC (smaller)', av1: 'AV1 (smallest, slow)', ffv1: 'FFV1 (lossless, huge)' }[c] || c)));
  const crf = h('input', { id: 'crf', name: 'crf', type: 'number', min: 0, max: 63, placeholder: 'codec default', inputmode: 'numeric' });
  const cost = h('p.cost', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', disabled: true }, 'Enhance');
  const err = h('div');
  const pickModel = () => {
    const m = models.find((x) => x.name === model.value) || { scales: [2, 3, 4], note: '' };
    const keep = scale.value;
    scale.replaceChildren(...m.scales.map((s) => h('option', { value: s }, `×${s}`)));
    if (m.scales.map(String).includes(keep)) scale.value = keep;
    note.textContent = m.note;
  };
  const quote = async () => {
    submit.disabled = true;
    try {
      const q = await api('GET', `/v1/jobs/quote?video_id=${v.id}&model=${encodeURIComponent(model.value)}&scale=${scale.value}`);
      cost.replaceChildren(
        h('strong', credits(q.price)),
        ` for ${q.output_width}×${q.output_height}; you have ${credits(q.available)}.`);
      if (!q.enough) {
        cost.append(h('span.error', ` You need ${credits(q.price - q.available)} more. `),
          'Credits are added by your operator and never expire; a smaller scale costs less.');
      }
      submit.disabled = !q.enough;
    } catch (e) {
      cost.replaceChildren(errorBox(e));
    }
  };
  const chosen = () => presets.find((p) => p.name === preset.value);
  const pickPreset = () => {
    const p = chosen();
    if (p) {
      model.value = p.model;
      pickModel();
      scale.value = String(p.scale);
      codec.value = p.codec;
      crf.value = p.crf == null ? '' : String(p.crf);
    }
    presetNote.textContent = p ? p.note : 'Model, scale and codec as chosen below.';
  };
  const custom = () => {
    const p = chosen();
    if (p && (model.value !== p.model || scale.value !== String(p.scale))) {
      preset.value = '';
      pickPreset();
    }
  };
  preset.addEventListener('change', () => { pickPreset(); quote(); });
  model.addEventListener('change', () => { pickModel(); custom(); quote(); });
  scale.addEventListener('change', () => { custom(); quote(); });
  pickModel();
  pickPreset();
  quote();
  const form = h('form.card', { on: { submit: async (ev) => {
    ev.preventDefault();
    err.replaceChildren();
    submit.disabled = true;
    const body = chosen()
      ? { video_id: v.id, preset: preset.value, codec: codec.value, idempotency_key: crypto.randomUUID() }
      : { video_id: v.id, model: model.value, scale: Number(scale.value), codec: codec.value, idempotency_key: crypto.randomUUID() };
    if (crf.value !== '') body.crf = Number(crf.value);
    try {
      const j = await api('POST', '/v1/jobs', body);
      location.hash = `#/jobs/${j.id}`;
    } catch (e) {
      err.replaceChildren(errorBox(e));
      submit.disabled = false;
    }
  } } },
    h('h2', 'Enhance'),
    h('div', h('label', { for: 'preset' }, 'Preset'), preset, presetNote),
    h('div.grid',
      h('div', h('label', { for: 'model' }, 'Model'), model, note),
      h('div', h('label', { for: 'scale' }, 'Scale'), scale),
      h('div', h('label', { for: 'codec' }, 'Codec'), codec),
      h('div', h('label', { for: 'crf' }, 'Quality (CRF, lower is better)'), crf)),
    cost, err, submit);
  return form;
}

function jobTable(jobs) {
  return h('div.scroll', h('table',
    h('thead', h('tr', ['Job', 'Settings', 'State', 'Progress', 'Cost', 'Started'].map((c, i) => h(i === 1 || i === 5 ? 'th.wide' : 'th', { scope: 'col' }, c)))),
    h('tbody', jobs.map((j) => h('tr',
      h('td', h('a', { href: `#/jobs/${j.id}` }, j.id.slice(0, 8))),
      h('td.wide', `${j.preset.preset ? `${j.preset.preset}: ` : ''}${j.preset.model || ''} ×${j.preset.scale || ''} ${j.preset.codec || ''}`),
      h('td', stateBadge(j.state)),
      h('td', jobProgress(j)),
      h('td.num', String(j.price)),
      h('td.wide', when(j.created_at)))))));
}

views.jobs = async () => {
  const { jobs } = await api('GET', '/v1/jobs?limit=200');
  const enh = jobs.filter((j) => j.kind === 'enhance');
  render('jobs', h('h1', 'Jobs'), enh.length ? jobTable(enh) : h('p.empty', 'No jobs yet. Open a video to enhance it.'));
  if (enh.some((j) => j.state === 'queued' || j.state === 'running')) every(3000, () => { stopLive(); views.jobs(); });
};

views.job = async (id) => {
  const j = await api('GET', `/v1/jobs/${id}`);
  const state = h('span');
  const bar = jobProgress(j);
  const line = h('p.progress-line', { 'aria-live': 'polite' });
  const out = h('div');
  const player = h('div.player');
  const cancel = h('button.secondary', { type: 'button', on: { click: async () => {
    try { await api('POST', `/v1/jobs/${id}/cancel`); line.textContent = 'Cancelling…'; } catch (e) { notice(e.message, 'error'); }
  } } }, 'Cancel job');
  const paintEnd = (j) => {
    state.replaceChildren(stateBadge(j.state));
    cancel.hidden = true;
    if (j.state === 'succeeded') {
      bar.max = j.frames_total || 1;
      bar.value = bar.max;
      line.textContent = `Done: ${j.frames_total} frames.`;
      out.replaceChildren(h('div.actions',
        h('button', { type: 'button', on: { click: () => openLink(j.output_video_id, '').catch((e) => notice(e.message, 'error')) } }, 'Download result'),
        h('button.secondary', { type: 'button', on: { click: () => preview(j.output_video_id, player).catch((e) => notice(e.message, 'error')) } }, 'Preview result'),
        h('a.button.secondary', { href: `#/videos/${j.output_video_id}` }, 'Open result')));
    } else if (j.state === 'failed') {
      line.replaceChildren(h('span.error', `Failed: ${j.error || 'unknown error'}. The reserved credits were released.`));
    } else if (j.state === 'cancelled') {
      line.textContent = 'Cancelled. The reserved credits were released.';
    }
  };
  render('job',
    h('h1', 'Job ', h('code', id.slice(0, 8))),
    h('dl.facts',
      h('dt', 'Video'), h('dd', h('a', { href: `#/videos/${j.video_id}` }, 'source')),
      h('dt', 'Settings'), h('dd', `${j.preset.model} ×${j.preset.scale}, ${j.preset.codec}${j.preset.crf != null ? ', CRF ' + j.preset.crf : ''}`),
      h('dt', 'Cost'), h('dd', credits(j.price)),
      h('dt', 'State'), h('dd', state)),
    bar, line, cancel, out, player);
  if (['succeeded', 'failed', 'cancelled'].includes(j.state)) return paintEnd(j);
  state.replaceChildren(stateBadge(j.state));
  line.textContent = j.state === 'queued' ? 'Waiting for a worker…' : 'Starting…';
  const es = new EventSource(`/v1/jobs/${id}/events`);
  live.push(() => es.close());
  es.addEventListener('progress', (ev) => {
    const p = JSON.parse(ev.data);
    state.replaceChildren(stateBadge(p.state || 'running'));
    if (p.state === 'queued') { line.textContent = 'Waiting for a worker…'; return; }
    if (p.frames_total) { bar.max = p.frames_total; bar.value = p.frames_done; }
    const parts = [`${p.frames_done} of ${p.frames_total ?? '?'} frames`];
    if (p.fps) parts.push(`${p.fps.toFixed(1)} fps`);
    if (p.eta_s != null) parts.push(`about ${duration(p.eta_s)} left`);
    line.textContent = parts.join(' · ');
  });
  es.addEventListener('end', (ev) => { es.close(); paintEnd(JSON.parse(ev.data)); });
};

const SCOPES = [
  ['videos:read', 'See and download videos'],
  ['videos:write', 'Upload and delete videos'],
  ['jobs:write', 'Start and cancel jobs (spends credits)'],
  ['admin', 'Manage API keys and the webhook'],
];

views.keys = async () => {
  const { keys } = await api('GET', '/v1/keys');
  const shown = h('div');
  const err = h('div');
  const form = h('form.card', { on: { submit: async (ev) => {
    ev.preventDefault();
    err.replaceChildren();
    const fd = new FormData(form);
    const scopes = fd.getAll('scope');
    const exp = Number(fd.get('expires'));
    try {
      const r = await api('POST', '/v1/keys', { name: fd.get('name'), scopes, expires_in_seconds: exp || null });
      await views.keys();
      showSecret(r);
    } catch (e) {
      err.replaceChildren(errorBox(e));
    }
  } } },
    h('h2', 'New key'),
    h('label', { for: 'key-name' }, 'Name'),
    h('input', { id: 'key-name', name: 'name', required: true, maxlength: 64, pattern: '[A-Za-z0-9._@\\-]{1,64}',
      placeholder: 'e.g. render-farm', 'aria-describedby': 'key-name-help' }),
    h('p.muted.small', { id: 'key-name-help' }, 'Letters, digits, dots, dashes, underscores and @; no spaces.'),
    h('fieldset', h('legend', 'What it may do'),
      SCOPES.map(([s, label]) => h('label.check', h('input', { type: 'checkbox', name: 'scope', value: s, checked: s === 'videos:read' }), ` ${label} `, h('code', s)))),
    h('label', { for: 'key-expires' }, 'Expires'),
    h('select', { id: 'key-expires', name: 'expires' },
      h('option', { value: 86400 }, 'in 1 day'),
      h('option', { value: 30 * 86400, selected: true }, 'in 30 days'),
      h('option', { value: 90 * 86400 }, 'in 90 days'),
      h('option', { value: 365 * 86400 }, 'in 1 year'),
      h('option', { value: 0 }, 'never')),
    err,
    h('button', { type: 'submit' }, 'Create key'));
  const rows = keys.map((k) => h('tr',
    h('td', k.name),
    h('td', k.scopes.map((s) => h('code', s + ' '))),
    h('td.wide', when(k.created_at)),
    h('td.wide', k.expires_at ? when(k.expires_at) : 'never'),
    h('td', k.last_used_at ? when(k.last_used_at) : 'never'),
    h('td', k.revoked_at ? stateBadge('revoked', 'failed') : h('button.secondary.small', { type: 'button', 'aria-label': `Revoke ${k.name}`, on: { click: async () => {
      if (!await confirmDialog(`Revoke “${k.name}”?`, 'Programs using this key are refused from now on. This cannot be undone.', 'Revoke')) return;
      try { await api('DELETE', `/v1/keys/${k.id}`); notice(`“${k.name}” was revoked.`); views.keys(); } catch (e) { notice(e.message, 'error'); }
    } } }, 'Revoke'))));
  render('keys',
    h('h1', 'API keys'),
    shown,
    h('div.scroll', h('table',
      h('thead', h('tr', ['Name', 'Scopes', 'Created', 'Expires', 'Last used', ''].map((c, i) => h(i === 2 || i === 3 ? 'th.wide' : 'th', { scope: 'col' }, c)))),
      h('tbody', rows))),
    form);
};

function showSecret(r) {
  const field = h('input', { id: 'new-secret', readonly: true, value: r.secret, 'aria-label': 'The new key', class: 'secret' });
  const copy = h('button', { type: 'button', on: { click: async () => {
    field.select();
    try { await navigator.clipboard.writeText(r.secret); copy.textContent = 'Copied'; } catch { copy.textContent = 'Press Ctrl+C to copy'; }
  } } }, 'Copy');
  const box = h('div.card.secret-box', { role: 'region', 'aria-label': 'New key' },
    h('h2', `Key “${r.key.name}” created`),
    h('p', h('strong', 'This is the only time it is shown. '), 'Store it somewhere safe; if it is lost, revoke it and create another.'),
    h('div.row', field, copy));
  main().querySelector('h1').after(box);
}

// How each ledger entry moves the balance (see docs/jobs.md: reservations hold
// credits until the job is captured or released).
const LEDGER = {
  grant: ['Added', (n) => `+${n}`],
  refund: ['Refunded', (n) => `+${n}`],
  reserve: ['Held for a job', (n) => `${n} held`],
  release: ['Hold released', (n) => `${n} back`],
  capture: ['Charged for a job', (n) => `−${n}`],
};

views.credits = async () => {
  const c = await api('GET', '/v1/credits');
  render('credits',
    h('h1', 'Credits'),
    h('div.cards',
      h('div.card.stat', h('span.big', c.available.toLocaleString()), h('span', 'available')),
      h('div.card.stat', h('span.big', c.reserved.toLocaleString()), h('span', 'reserved by running jobs'))),
    h('p', h('strong', 'Credits never expire. '), 'A job reserves its price when it starts and is charged only when it succeeds; a failed or cancelled job releases its reservation.'),
    h('h2', 'History'),
    c.ledger.length
      ? h('div.scroll', h('table',
        h('thead', h('tr', ['When', 'What', 'Credits', 'Job'].map((x, i) => h(i === 3 ? 'th.wide' : 'th', { scope: 'col' }, x)))),
        h('tbody', c.ledger.map((e) => {
          const [what, amount] = LEDGER[e.kind] || [e.kind, String];
          return h('tr',
            h('td', when(e.at)),
            h('td', what, e.note ? h('span.muted.small', ` (${e.note})`) : null),
            h('td.num', amount(e.amount.toLocaleString())),
            h('td.wide', e.job_id ? h('a', { href: `#/jobs/${e.job_id}` }, e.job_id.slice(0, 8)) : '—'));
        }))))
      : h('p.empty', 'No credit movements yet.'));
};

const OUTCOME = { ok: 'succeeded', succeeded: 'succeeded', refused: 'failed', failed: 'failed', cancelled: 'cancelled' };

/** `video:0123…` with the id cut to 8 characters (the full id is in the title). */
function short(s) {
  const m = /^([a-z_]+):([0-9a-f]{32})$/.exec(s);
  return m ? h('span', { title: s }, `${m[1]}:${m[2].slice(0, 8)}`) : s;
}

const REASONS = {
  customer_request: 'You asked for help',
  service_incident: 'A service failure involving this video',
  security_investigation: 'Abuse or a security event',
  legal_obligation: 'A legal request',
};

const GRANT_BADGE = { pending: 'queued', active: 'running', expired: 'cancelled', lapsed: 'cancelled', denied: 'failed', revoked: 'failed' };

/** The operators' requests for the tenant's videos, with approve / deny / end. */
function accessRequests(requests) {
  if (!requests.length) return h('p.empty', 'No member of staff has asked for access to your videos.');
  const act = (r, approve) => async () => {
    const verb = approve ? 'approve' : 'deny';
    const title = approve ? `Let ${r.operator} open this video?` : (r.status === 'active' ? `End ${r.operator}’s access now?` : `Deny ${r.operator}’s request?`);
    const text = approve
      ? `Access lasts ${Math.round(r.ttl_seconds / 60)} minutes from now, for this one video, and every use is listed below.`
      : 'They cannot open the video under this request.';
    if (!await confirmDialog(title, text, approve ? 'Approve' : (r.status === 'active' ? 'End access' : 'Deny'))) return;
    try { await api('POST', `/v1/access/requests/${r.id}/${verb}`); notice(approve ? 'Approved.' : 'Done: no access.'); views.security(); } catch (e) { notice(e.message, 'error'); }
  };
  return h('div.scroll', h('table',
    h('thead', h('tr', ['Asked', 'Who', 'Video', 'Why', 'Ticket', 'Status', ''].map((x, i) => h(i === 4 ? 'th.wide' : 'th', { scope: 'col' }, x)))),
    h('tbody', requests.map((r) => h('tr',
      h('td', when(r.requested_at)),
      h('td', r.operator, h('span.muted.small', r.employer ? ` (${r.employer}, ${r.location})` : '')),
      h('td', h('a', { href: `#/videos/${r.video_id}`, title: r.video_id }, r.video_id.slice(0, 8))),
      h('td', REASONS[r.reason_code] || r.reason_code, h('br'), h('span.muted.small', r.reason)),
      h('td.wide', r.ticket),
      h('td', stateBadge(r.status, GRANT_BADGE[r.status]), r.expires_at && r.status === 'active' ? h('span.muted.small', ` until ${when(r.expires_at)}`) : null),
      h('td', r.status === 'pending'
        ? h('div.row',
          h('button.small', { type: 'button', 'aria-label': `Approve ${r.operator}`, on: { click: act(r, true) } }, 'Approve'),
          h('button.secondary.small', { type: 'button', 'aria-label': `Deny ${r.operator}`, on: { click: act(r, false) } }, 'Deny'))
        : r.status === 'active'
          ? h('button.secondary.small', { type: 'button', 'aria-label': `End ${r.operator}'s access`, on: { click: act(r, false) } }, 'End access')
          : null))))));
}

/** Audit entries as a table. */
function auditTable(entries, empty) {
  return entries.length
    ? h('div.scroll', h('table',
      h('thead', h('tr', ['When', 'Event', 'Outcome', 'Object', 'Who', 'From'].map((x, i) => h(i >= 4 ? 'th.wide' : 'th', { scope: 'col' }, x)))),
      h('tbody', entries.map((e) => h('tr',
        h('td', when(e.at)),
        h('td', h('code', e.action), e.detail && e.detail.reason ? h('span.muted.small', h('br'), `${e.detail.reason} (${e.detail.ticket})`) : null),
        h('td', stateBadge(e.outcome, OUTCOME[e.outcome] || 'queued')),
        h('td', h('code', short(e.target))),
        h('td.wide', short(e.actor), e.detail && e.detail.employer ? h('span.muted.small', ` (${e.detail.employer}, ${e.detail.location})`) : null),
        h('td.wide', e.source || '—'))))))
    : h('p.empty', empty);
}

views.security = async () => {
  const [me, audit, settings, reqs, access, report] = await Promise.all([
    api('GET', '/v1/me'), api('GET', '/v1/audit?limit=100'), api('GET', '/v1/access/settings'),
    api('GET', '/v1/access/requests'), api('GET', '/v1/access/log?limit=100'), api('GET', '/v1/security-report')]);
  const selfTest = report.processing.self_test;
  const approval = h('input', { type: 'checkbox', id: 'access-approval', checked: settings.require_approval, on: { change: async () => {
    try {
      await api('PUT', '/v1/access/settings', { require_approval: approval.checked });
      notice(approval.checked ? 'Staff now need your approval before opening a video.' : 'Staff no longer need your approval (each access is still listed here).');
    } catch (e) { approval.checked = !approval.checked; notice(e.message, 'error'); }
  } } });
  render('security',
    h('h1', 'Security'),
    h('div.card',
      h('h2', 'How your videos are protected'),
      h('ul',
        h('li', 'Connections use TLS 1.2 or 1.3 only.'),
        h('li', 'Every stored byte is sealed with AES-256-GCM under a key of its own, wrapped by your tenant’s key; deleting a video destroys its key.'),
        h('li', 'Downloads go through signed links that expire; storage has no public address.'),
        h('li', 'Enhancement runs in a sandbox with no network and no keys, destroyed after each job.'),
        h('li', 'Staff cannot open your videos without a time-limited grant for one video, with a reason; every request and access is listed below.'))),
    h('h2', 'Staff access'),
    h('label.check', approval, ' Ask for my approval before a member of staff opens one of my videos'),
    accessRequests(reqs.requests),
    h('h3', 'Access transparency'),
    h('p.muted', 'Every request and action of staff on your account and videos, with its reason, newest first.'),
    auditTable(access.entries, 'No member of staff has acted on your data.'),
    h('h2', 'Audit log'),
    h('p.muted', 'Every security-relevant event of your account, newest first. Each entry is sealed onto a chain with a key the database does not hold, so an edited, removed or inserted entry is detected.'),
    auditTable(audit.entries, 'Nothing recorded yet.'),
    h('div.card',
      h('h2', 'Security report'),
      h('p.muted', `Answered by the running service at ${when(report.generated_at)}.`),
      h('ul',
        h('li', `TLS offered: ${report.transport.protocols.join(', ')}; ${report.transport.cipher_suites.length} cipher suites, all with forward secrecy.`),
        h('li', 'Sandbox self-test at start-up: ',
          selfTest.ok === true ? stateBadge('passed', 'succeeded') : selfTest.ok === false ? stateBadge('failed', 'failed') : stateBadge('not run yet', 'queued'),
          selfTest.checked_at ? ` (${when(selfTest.checked_at)})` : ''),
        h('li', `Staff accesses to your videos in the last 30 days: ${report.your_tenant.operator_accesses_last_30_days}.`),
        h('li', `Processing runs on ${report.processing.location}.`),
        h('li', 'Certifications claimed: none.')),
      h('p', h('a', { href: '/security' }, 'The full report'), ' (also as JSON: ', h('a', { href: '/v1/security-report' }, '/v1/security-report'), ').')),
    h('p.muted', `Tenant ${me.tenant_id}, signed in as ${me.principal_id}.`));
};

/** The first administrator's one-time link (`bv serve` prints it while no
 *  user exists): choose a login and password, then be signed in. The token
 *  lives in the address's fragment, which never reaches a server log. */
views.setup = async (token) => {
  // The token leaves the address bar (and the history) at once.
  history.replaceState(null, '', '#/setup');
  renderingFor = location.hash;
  if (!token) {
    render('setup', h('section.card.narrow', h('h1', 'First sign-in'),
      h('p', 'Open the link the first start of `bv serve` printed, or make a new one with `bv admin user setup-link`.')));
    return;
  }
  const err = h('div');
  const form = h('form.card.narrow', { on: { submit: async (ev) => {
    ev.preventDefault();
    err.replaceChildren();
    const fd = new FormData(form);
    if (fd.get('password') !== fd.get('again')) {
      err.replaceChildren(errorBox({ message: 'The two passwords differ.' }));
      return;
    }
    // One try at a time: the link works once.
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      await api('POST', '/v1/setup', { token, login: fd.get('login'), password: fd.get('password') });
      const s = await api('POST', '/v1/session', { login: fd.get('login'), password: fd.get('password') });
      session.save(s.csrf_token, s.idle_timeout_seconds);
      lastInput = Date.now();
      notice('Welcome: you are the first administrator. The link you used no longer works.');
      location.hash = '#/videos';
    } catch (e) {
      err.replaceChildren(errorBox(e));
    } finally {
      button.disabled = false;
    }
  } } },
    h('h1', 'Set up the first administrator'),
    h('p.muted', 'This link works once, for 15 minutes. Choose how you will sign in from now on.'),
    h('label', { for: 'login' }, 'Login'),
    // No suggested login: `admin` is taken by the first API key's service account.
    h('input', { id: 'login', name: 'login', autocomplete: 'username', required: true, autofocus: true, placeholder: 'e.g. your name' }),
    h('label', { for: 'password' }, 'Password (at least 12 characters)'),
    h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 12 }),
    h('label', { for: 'again' }, 'Password again'),
    h('input', { id: 'again', name: 'again', type: 'password', autocomplete: 'new-password', required: true, minlength: 12 }),
    err,
    h('button', { type: 'submit' }, 'Set password and sign in'));
  render('setup', form);
};

// ---------------------------------------------------------------- routing

async function route() {
  stopLive();
  if (noticeAt !== location.hash) notice('');
  const [, name, id] = (location.hash || '#/videos').split('/');
  const signedIn = !!session.csrf;
  $('#nav').hidden = !signedIn;
  if (!signedIn && name !== 'signin' && name !== 'setup') { location.hash = '#/signin'; return; }
  if (signedIn && name === 'signin') { location.hash = '#/videos'; return; }
  const fn = views[viewFor(location.hash)];
  renderingFor = location.hash;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  main().setAttribute('aria-busy', 'true');
  try {
    await fn(id);
  } catch (e) {
    if (e.status !== 401) render('error', h('h1', 'Something went wrong'), errorBox(e));
  }
}

addEventListener('hashchange', route);
$('#signout').addEventListener('click', () => signOut('You are signed out.'));
route();
