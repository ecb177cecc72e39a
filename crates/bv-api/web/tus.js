// A small tus 1.0 client (creation, core, termination) for this app's own
// server: resumable uploads that survive a page reload.
//
// Why our own and not tus-js-client: the app must stay tiny and carry no
// third-party code; the server side is ours, so only the parts of the
// protocol it speaks are needed. The server suite also runs tus-js-client
// itself, so the two stay compatible.
//
// Resuming: the upload URL is remembered in localStorage under a fingerprint
// of the file (name, size, modification time). Choosing the same file again
// after a reload asks the server for its offset (HEAD) and goes on from there.

const STORE = 'bv.uploads';
const RETRY_MS = [1000, 3000, 5000, 10000, 20000];

/** The remembered unfinished uploads: { fingerprint: {url, name, size, videoId, offset} }. */
export function pending() {
  try {
    return JSON.parse(localStorage.getItem(STORE) || '{}');
  } catch {
    return {};
  }
}

function remember(fp, entry) {
  const all = pending();
  if (entry) all[fp] = entry; else delete all[fp];
  localStorage.setItem(STORE, JSON.stringify(all));
}

/** Forgets every remembered upload (on sign-out: another person may sign in next). */
export function forgetAll() {
  localStorage.removeItem(STORE);
}

/** The key a file is remembered under. */
export function fingerprint(file) {
  return `${file.name}|${file.size}|${file.lastModified}`;
}

function b64(text) {
  let bin = '';
  for (const b of new TextEncoder().encode(text)) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** An HTTP failure with the service's stable error code. */
export class TusError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function failure(status, text) {
  try {
    const e = JSON.parse(text).error;
    return new TusError(status, e.code, e.message);
  } catch {
    return new TusError(status, 'http_' + status, `the server answered ${status}`);
  }
}

/**
 * One upload. Callbacks: onProgress(sent, total), onSuccess(videoId), onError(err).
 * headers() returns extra headers for every request (the CSRF token).
 */
export class Upload {
  constructor(file, opts) {
    this.file = file;
    this.endpoint = opts.endpoint;
    this.chunkSize = opts.chunkSize || 8 * 1024 * 1024;
    this.headers = opts.headers || (() => ({}));
    this.onProgress = opts.onProgress || (() => {});
    this.onSuccess = opts.onSuccess || (() => {});
    this.onError = opts.onError || (() => {});
    this.fp = fingerprint(file);
    this.url = null;
    this.videoId = null;
    this.offset = 0;
    this.resumedFrom = null;
    this.xhr = null;
    this.paused = true;
    this.retries = 0;
  }

  /** Starts or resumes. */
  async start() {
    if (!this.paused) return;
    this.paused = false;
    try {
      if (!this.url) await this.locate();
      await this.send();
    } catch (e) {
      if (this.paused) return;
      if (this.retryable(e) && this.retries < RETRY_MS.length) {
        const wait = RETRY_MS[this.retries++];
        this.paused = true;
        // Ask the server for its offset again before going on.
        this.url = null;
        this.timer = setTimeout(() => this.start(), wait);
        return;
      }
      this.paused = true;
      this.onError(e);
    }
  }

  /** Stops sending; what reached the server stays there. */
  pause() {
    this.paused = true;
    clearTimeout(this.timer);
    if (this.xhr) this.xhr.abort();
  }

  /** Abandons the upload: the server shreds what it stored. */
  async abort() {
    this.pause();
    remember(this.fp, null);
    if (this.url) {
      await fetch(this.url, { method: 'DELETE', headers: { 'Tus-Resumable': '1.0.0', ...this.headers() } });
    }
  }

  retryable(e) {
    return e.status === 0 || e.status === 409 || e.status === 423 || e.status >= 500;
  }

  /** Finds the remembered upload on the server, or creates a new one. */
  async locate() {
    const known = pending()[this.fp];
    if (known) {
      const r = await fetch(known.url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
      if (r.ok) {
        this.url = known.url;
        this.videoId = r.headers.get('bv-video-id');
        this.offset = Number(r.headers.get('upload-offset'));
        this.resumedFrom = this.offset;
        return;
      }
      // Expired or gone: start over.
      remember(this.fp, null);
    }
    const meta = `filename ${b64(this.file.name)},filetype ${b64(this.file.type || 'application/octet-stream')}`;
    const r = await fetch(this.endpoint, {
      method: 'POST',
      headers: {
        'Tus-Resumable': '1.0.0',
        'Upload-Length': String(this.file.size),
        'Upload-Metadata': meta,
        ...this.headers(),
      },
    });
    if (r.status !== 201) throw await failure(r.status, await r.text());
    this.url = new URL(r.headers.get('location'), location.href).pathname;
    this.videoId = r.headers.get('bv-video-id');
    this.offset = 0;
    remember(this.fp, { url: this.url, name: this.file.name, size: this.file.size, videoId: this.videoId, offset: 0 });
  }

  /** PATCHes chunk after chunk until the server holds every byte. */
  async send() {
    while (!this.paused && this.offset < this.file.size) {
      const end = Math.min(this.offset + this.chunkSize, this.file.size);
      this.offset = await this.patch(this.file.slice(this.offset, end));
      this.retries = 0;
      remember(this.fp, { ...pending()[this.fp], offset: this.offset });
    }
    if (this.offset >= this.file.size && !this.paused) {
      this.paused = true;
      remember(this.fp, null);
      this.onProgress(this.file.size, this.file.size);
      this.onSuccess(this.videoId);
    }
  }

  patch(chunk) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      xhr.open('PATCH', this.url);
      xhr.setRequestHeader('Tus-Resumable', '1.0.0');
      xhr.setRequestHeader('Upload-Offset', String(this.offset));
      xhr.setRequestHeader('Content-Type', 'application/offset+octet-stream');
      for (const [k, v] of Object.entries(this.headers())) xhr.setRequestHeader(k, v);
      const base = this.offset;
      xhr.upload.onprogress = (e) => this.onProgress(base + e.loaded, this.file.size);
      xhr.onload = async () => {
        this.xhr = null;
        if (xhr.status === 204) resolve(Number(xhr.getResponseHeader('upload-offset')));
        else reject(await failure(xhr.status, xhr.responseText));
      };
      xhr.onerror = () => {
        this.xhr = null;
        reject(new TusError(0, 'network', 'the connection was interrupted'));
      };
      xhr.onabort = () => {
        this.xhr = null;
        reject(new TusError(0, 'aborted', 'paused'));
      };
      xhr.send(chunk);
    });
  }
}
