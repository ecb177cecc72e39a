// Drives the web app in Debian's chromium (headless) with playwright-core:
// sign in, upload (reloading mid-upload and resuming), enhance ×2 and watch it
// finish, download and check the file with ffprobe, preview through a signed
// link, delete, create an API key and use it with curl, revoke it and see curl
// refused, credits, security (approve a member of staff's request); then wait past a short idle timeout and be
// signed out. Any console error, page error, failed request or CSP violation
// fails the run. Screenshots of every page at desktop and phone width go to
// WEB_ARTIFACTS.
//
// Run by crates/bv/tests/service/web.rs, which starts the servers and passes:
//   WEB_URL WEB_IDLE_URL WEB_LOGIN WEB_SETUP_LINK WEB_PASSWORD WEB_BIG WEB_CLIP WEB_CA
//   WEB_IDLE_CA WEB_ARTIFACTS WEB_DOWNLOADS
// It prints one JSON line of findings on success and exits non-zero on failure.

'use strict';
const { chromium } = require('playwright-core');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const URL_ = env('WEB_URL');
const IDLE_URL = env('WEB_IDLE_URL');
const LOGIN = env('WEB_LOGIN');
const SETUP_LINK = env('WEB_SETUP_LINK');
const PASSWORD = env('WEB_PASSWORD');
const BIG = env('WEB_BIG');
const CLIP = env('WEB_CLIP');
const CA = env('WEB_CA');
const IDLE_CA = env('WEB_IDLE_CA');
const ART = env('WEB_ARTIFACTS');
const DL = env('WEB_DOWNLOADS');

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const problems = [];
let current = null; // the page in use, for a screenshot when something fails
const found = {};

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

/** Fails the run on anything the page reports as wrong. */
async function watch(context, page, expected = []) {
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
    });
  });
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 400 && !expected.some((x) => r.url().includes(x))) {
      problems.push(`HTTP ${r.status()} for ${r.request().method()} ${new URL(r.url()).pathname}`);
    }
  });
  page.on('requestfailed', (r) => {
    const err = r.failure() ? r.failure().errorText : '';
    // A reload or a pause aborts the upload in flight on purpose.
    if (err !== 'net::ERR_ABORTED') problems.push(`request failed: ${r.method()} ${new URL(r.url()).pathname} ${err}`);
  });
}

async function view(page, name) {
  await page.waitForSelector(`main[data-view="${name}"][aria-busy="false"]`, { timeout: 30000 });
}

async function shot(page, name, phoneToo = true) {
  await page.screenshot({ path: path.join(ART, `${name}-desktop.png`), fullPage: true });
  if (phoneToo) {
    await page.setViewportSize(PHONE);
    await page.waitForTimeout(150);
    await page.screenshot({ path: path.join(ART, `${name}-phone.png`), fullPage: true });
    await page.setViewportSize(DESKTOP);
  }
}

async function go(page, hash, name) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await view(page, name);
}

function curlStatus(url, key) {
  return execFileSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', CA,
    '-H', `Authorization: Bearer ${key}`, url]).toString();
}

function probe(file) {
  const out = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries',
    'stream=width,height', '-of', 'json', file]).toString();
  return JSON.parse(out).streams[0];
}

async function signIn(page) {
  await view(page, 'signin');
  await page.getByLabel('Login').fill(LOGIN);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await view(page, 'videos');
}

async function main() {
  fs.mkdirSync(ART, { recursive: true });
  fs.mkdirSync(DL, { recursive: true });
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    await mainFlow(browser);
    await idleFlow(browser);
  } catch (e) {
    if (current) await current.screenshot({ path: path.join(ART, 'failure.png'), fullPage: true }).catch(() => {});
    throw e;
  } finally {
    await browser.close();
  }
}

async function mainFlow(browser) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: DESKTOP, acceptDownloads: true });
  const page = await context.newPage();
  current = page;
  await watch(context, page);

  // The page and its policy.
  const resp = await page.goto(URL_ + '/');
  const csp = resp.headers()['content-security-policy'] || '';
  check(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline') && !csp.includes('unsafe-eval')
    && csp.includes("frame-ancestors 'none'"), `page CSP: ${csp}`);
  found.csp = csp;
  await view(page, 'signin');
  await shot(page, 'signin');
  // Nobody can sign in yet: the first administrator follows the one-time
  // link the first start printed and chooses a password.
  await page.goto(SETUP_LINK);
  await view(page, 'setup');
  const token = SETUP_LINK.split('#/setup/')[1];
  check(!page.url().includes(token), `the token left the address bar: ${page.url()}`);
  await shot(page, 'setup');
  await page.fill('#login', LOGIN);
  await page.fill('#password', PASSWORD);
  await page.fill('#again', PASSWORD);
  await page.getByRole('button', { name: 'Set password and sign in' }).click();
  await view(page, 'videos');

  // Upload the big file slowly; reload once part of it is stored; resume.
  await go(page, '#/upload', 'upload');
  // Each chunk waits a while before it leaves, so the reload lands mid-upload.
  const slow = async (route) => {
    await new Promise((r) => setTimeout(r, 1500));
    await route.continue().catch(() => {});
  };
  await page.route('**/v1/uploads/*', (route) => (route.request().method() === 'PATCH' ? slow(route) : route.continue()));
  const patches = [];
  page.on('request', (r) => {
    if (r.method() === 'PATCH') patches.push({ at: Date.now(), offset: Number(r.headers()['upload-offset']) });
  });
  await page.setInputFiles('#file', BIG);
  await page.waitForFunction(() => {
    const all = JSON.parse(localStorage.getItem('bv.uploads') || '{}');
    return Object.values(all).some((u) => u.offset > 0);
  }, null, { timeout: 60000 });
  await page.waitForTimeout(500);
  await shot(page, 'upload-progress', false);
  // Pause and resume by hand.
  await page.getByRole('button', { name: 'Pause' }).click();
  await page.getByText(/· paused/).waitFor();
  await page.getByRole('button', { name: 'Resume' }).click();
  await page.getByRole('button', { name: 'Pause' }).waitFor();
  const size = fs.statSync(BIG).size;
  const before = await page.evaluate(() => Object.values(JSON.parse(localStorage.getItem('bv.uploads')))[0].offset);
  check(before > 0 && before < size, `reloaded mid-upload (${before} of ${size})`);
  await page.reload();
  await view(page, 'upload');
  await page.getByText('Unfinished uploads').waitFor();
  await page.unrouteAll({ behavior: 'ignoreErrors' });
  const reloadedAt = Date.now();
  await page.setInputFiles('#file', BIG);
  await page.getByText('Uploaded. It is being examined').waitFor({ timeout: 60000 });
  const after = patches.filter((p) => p.at >= reloadedAt);
  check(after.length > 0 && after[0].offset >= before, `resumed at ${after.length && after[0].offset}, not from zero`);
  found.upload = { size, reloadedAt: before, resumedAt: after[0].offset };

  // The small clip, enhanced ×2.
  await page.setInputFiles('#file', CLIP);
  await page.locator('.upload').filter({ hasText: path.basename(CLIP) }).getByRole('link', { name: 'open it' }).click();
  await view(page, 'video');
  await page.waitForSelector('#model', { timeout: 120000 });
  // Presets fill in model and scale, each with its note; a hand-picked
  // model turns the choice into Custom.
  const presets = await page.locator('#preset option').allTextContents();
  check(presets.length === 5 && presets[4] === 'Custom', `presets offered: ${presets}`);
  await page.selectOption('#preset', 'denoise-strong');
  check(await page.inputValue('#model') === 'realcugan-se-denoise3x', 'a preset picks its model');
  await page.getByText('Grainy, noisy or heavily compressed').waitFor();
  await page.selectOption('#model', 'realesr-animevideov3');
  check(await page.inputValue('#preset') === '', 'a hand-picked model is Custom');
  await page.selectOption('#preset', 'anime');
  await page.selectOption('#scale', '2');
  await page.getByText(/credits? for \d+×\d+; you have/).waitFor();
  const cost = await page.locator('.cost').textContent();
  found.cost = cost;
  await shot(page, 'enhance');
  await page.getByRole('button', { name: 'Enhance' }).click();
  await view(page, 'job');
  const jobHash = await page.evaluate(() => location.hash);
  await shot(page, 'job-running', false);
  await page.locator('main .progress-line').filter({ hasText: /^(Done|Failed|Cancelled)/ }).waitFor({ timeout: 300000 });
  const ended = await page.locator('main .progress-line').first().textContent();
  check(/^Done: \d+ frames\./.test(ended), `the job ended: ${ended}`);
  await shot(page, 'job');

  // Download through a freshly minted signed link; check the file.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download result' }).click(),
  ]);
  const out = path.join(DL, 'result.mp4');
  await download.saveAs(out);
  const got = probe(out);
  const src = probe(CLIP);
  check(got.width === 2 * src.width && got.height === 2 * src.height,
    `result is ${got.width}x${got.height}, source ${src.width}x${src.height}`);
  found.download = { width: got.width, height: got.height, bytes: fs.statSync(out).size };
  check(new URL(download.url()).pathname.startsWith('/v1/dl/'), 'downloaded through a signed link');

  // Preview: the <video> element loads the result through a signed link (Range requests).
  await page.getByRole('button', { name: 'Preview result' }).click();
  await page.waitForFunction(() => {
    const v = document.querySelector('.player video');
    return v && v.readyState >= 1 && v.videoWidth > 0;
  }, null, { timeout: 30000 });
  found.preview = await page.evaluate(() => {
    const v = document.querySelector('.player video');
    return { width: v.videoWidth, height: v.videoHeight, duration: v.duration };
  });
  check(found.preview.width === got.width, 'the preview plays the result');

  // Delete the big upload, through the confirmation.
  await go(page, '#/videos', 'videos');
  await shot(page, 'videos');
  // Every video says when retention deletes it: the result on a date, the
  // original (this server keeps originals) never.
  const heads = await page.locator('thead th').allTextContents();
  check(heads.includes('Deleted on'), `columns: ${heads}`);
  const resultRow = page.locator('tbody tr').filter({ hasText: /-x2\.mp4/ }).first();
  const resultWhen = await resultRow.locator('td').nth(5).textContent();
  check(/\d/.test(resultWhen) && !/Kept/.test(resultWhen), `the result is deleted on a date: ${resultWhen}`);
  const clipRow = page.locator('tbody tr').filter({ hasText: path.basename(CLIP) }).first();
  check(/Kept until you delete it/.test(await clipRow.textContent()), 'the kept original says so');
  const bigName = path.basename(BIG);
  await page.getByRole('button', { name: `Delete ${bigName}` }).click();
  await page.getByText('can recover the video afterwards').waitFor();
  await shot(page, 'delete-confirm', false);
  await page.getByRole('button', { name: 'Delete forever' }).click();
  await page.getByText(`“${bigName}” was deleted`).waitFor();
  await view(page, 'videos');
  check(await page.getByRole('link', { name: bigName }).count() === 0, 'the deleted video is gone from the list');

  // An API key: created, shown once, used with curl, revoked, refused.
  await go(page, '#/keys', 'keys');
  await page.getByLabel('Name').fill('curl-test');
  await page.getByRole('button', { name: 'Create key' }).click();
  const secret = await page.locator('#new-secret').inputValue();
  check(/^bv_/.test(secret), 'a key is shown once');
  await page.getByRole('button', { name: 'Copy' }).click();
  await shot(page, 'keys-created', false);
  check(curlStatus(`${URL_}/v1/videos`, secret) === '200', 'curl with the new key is let in');
  await go(page, '#/credits', 'credits');
  await go(page, '#/keys', 'keys');
  const row = page.getByRole('row').filter({ hasText: 'curl-test' });
  check(!/never\s*$/.test((await row.locator('td').nth(4).textContent()).trim()), 'last used is shown');
  await shot(page, 'keys');
  await row.getByRole('button', { name: 'Revoke curl-test' }).click();
  await page.getByRole('button', { name: 'Revoke', exact: true }).click();
  await page.getByText('“curl-test” was revoked.').waitFor();
  check(curlStatus(`${URL_}/v1/videos`, secret) === '401', 'curl with the revoked key is refused');

  // Credits and security.
  await go(page, '#/credits', 'credits');
  check(await page.getByText('Credits never expire.').count() === 1, 'credits never expire is stated');
  await shot(page, 'credits');
  await go(page, '#/security', 'security');
  check(await page.getByRole('cell', { name: 'key.revoke' }).count() >= 1, 'the audit log shows the revocation');
  // A member of staff waits for approval to open one video: approve it, then
  // stop requiring approval.
  const approval = page.getByRole('checkbox', { name: /Ask for my approval/ });
  check(await approval.isChecked(), 'approval is required, as the tenant set it');
  check(await page.getByRole('cell', { name: /customer asked about a flicker/ }).count() >= 1, 'the request shows its reason');
  await page.getByRole('button', { name: 'Approve carol' }).click();
  await page.getByRole('button', { name: 'Approve', exact: true }).click();
  await page.getByText('Approved.').waitFor();
  await page.getByRole('button', { name: "End carol's access" }).waitFor();
  check(await page.getByRole('cell', { name: /access\.approved/ }).count() >= 1, 'the approval is in the access log');
  check(await page.getByText('Sandbox self-test at start-up:').count() === 1, 'the security report is shown');
  await approval.uncheck();
  await page.getByText('Staff no longer need your approval', { exact: false }).waitFor();
  await shot(page, 'security');
  // The full report, from the Security page's link; then back into the app.
  await page.getByRole('link', { name: 'The full report' }).click();
  await page.getByRole('heading', { name: '1. Transport' }).waitFor();
  check(await page.getByText('every check held').count() === 1, 'the report shows the passed sandbox self-test');
  await shot(page, 'security-report');
  await page.goBack();
  await view(page, 'security');

  // Every page at phone width as well.
  await go(page, '#/upload', 'upload');
  await shot(page, 'upload');
  await go(page, '#/jobs', 'jobs');
  await shot(page, 'jobs');
  await page.evaluate((h) => { location.hash = h; }, jobHash);
  await view(page, 'job');

  // Keyboard: after a fresh load, the first Tab reaches the skip link.
  await page.reload();
  await view(page, 'job');
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement && document.activeElement.className === 'skip'), 'Tab reaches the skip link first');

  // The detector works: an inline script is refused by the policy and reported.
  const n = problems.length;
  const ran = await page.evaluate(async () => {
    const s = document.createElement('script');
    s.textContent = 'window.__inlineRan = true';
    document.head.append(s);
    await new Promise((r) => setTimeout(r, 300));
    return window.__inlineRan === true;
  });
  check(!ran, 'an inline script does not run');
  check(problems.length > n && problems.slice(n).every((p) => /CSP violation|Content Security Policy/.test(p)), 'the violation was reported');
  problems.splice(n);
  await context.close();
}

async function idleFlow(browser) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: DESKTOP });
  const page = await context.newPage();
  current = page;
  await watch(context, page);
  await page.goto(IDLE_URL + '/');
  await signIn(page);
  const cookie = (await context.cookies()).find((c) => c.name === '__Host-bv_session');
  check(cookie, 'a session cookie was set');
  const t0 = Date.now();
  await page.getByText(/You were signed out after \d+ s without activity\./).waitFor({ timeout: 30000 });
  await view(page, 'signin');
  found.idleSignOutSeconds = (Date.now() - t0) / 1000;
  await shot(page, 'signed-out');
  const status = execFileSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', IDLE_CA,
    '-H', `Cookie: __Host-bv_session=${cookie.value}`, `${IDLE_URL}/v1/me`]).toString();
  check(status === '401', `the old session is refused (${status})`);
  await context.close();
}

main().then(() => {
  if (problems.length) {
    console.error(problems.join('\n'));
    process.exit(1);
  }
  console.log(JSON.stringify(found));
}, (e) => {
  console.error(e.stack || String(e));
  if (problems.length) console.error('also:\n' + problems.join('\n'));
  process.exit(1);
});
