// Drives Debian's headless Chromium (playwright-core, no downloaded browser) through the manager
// pages: sign in at the real provider as a manager, open the team view, open a report's file,
// record an action on their open case with the form (no JavaScript needed by the page), and read
// it back. Prints one JSON line.
//
// env: START_URL (the gate's /.clearance/manage), LOGIN (the manager at the provider),
//      SUBJECT (the report to act on), COMMENT, CHROMIUM (default /usr/bin/chromium),
//      SCREENSHOT_DIR (optional)

import { launch, screenshots, signIn } from './common.mjs';

const start = process.env.START_URL;
const login = process.env.LOGIN;
const subject = process.env.SUBJECT;
const comment = process.env.COMMENT || 'Reminded in person';
if (!start || !login || !subject) {
  console.error('START_URL, LOGIN and SUBJECT are required');
  process.exit(2);
}

const browser = await launch();
const seen = {};
try {
  // The pages work without JavaScript: prove it by turning it off.
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  const shot = screenshots(page);

  // 1. Sign in at the provider (its forms post without scripts too).
  await signIn(page, start, login);

  // 2. The team at a glance.
  await page.waitForSelector('table#team', { timeout: 15000 });
  seen.team_url = page.url();
  seen.team = await page.$$eval('table#team tr[data-subject]', (rows) => rows.map((r) => r.dataset.subject));
  await shot('1-team');

  // 3. The report's file.
  await Promise.all([
    page.waitForLoadState('load'),
    page.click(`tr[data-subject="${subject}"] a`),
  ]);
  await page.waitForSelector('#record-action form');
  seen.open_cases = await page.$$eval('section[data-case][data-state="open"]', (s) => s.length);
  await shot('2-file');

  // 4. Record an action with the form.
  await page.selectOption('#kind', 'escalated');
  await page.fill('#comment', comment);
  const [response] = await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    page.click('#record-action button[type="submit"]'),
  ]);
  seen.after_status = response ? response.status() : null;
  seen.after_url = page.url();
  seen.flash = (await page.textContent('.flash')) || null;
  seen.actions = await page.$$eval('section[data-case] table.actions tbody tr',
    (rows) => rows.map((r) => Array.from(r.cells).map((c) => c.textContent.trim())));
  await shot('3-recorded');
  console.log(JSON.stringify(seen));
} catch (e) {
  console.error(`manage failed: ${e && e.stack ? e.stack : e}\nseen so far: ${JSON.stringify(seen)}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
