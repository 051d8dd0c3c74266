// Drives Debian's headless Chromium (playwright-core, no downloaded browser) through Clearance's
// self-service sign-off: sign in at the real provider, see the block page, open the policy, find
// Accept disabled, scroll to the end, accept, land on the upstream. Prints one JSON line.
//
// env: START_URL (a gated URL), LOGIN (account at the provider), REQUIREMENT (the id to accept),
//      CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (optional)

import { chromium } from 'playwright-core';

const start = process.env.START_URL;
const login = process.env.LOGIN;
const requirement = process.env.REQUIREMENT;
const shots = process.env.SCREENSHOT_DIR;
if (!start || !login || !requirement) {
  console.error('START_URL, LOGIN and REQUIREMENT are required');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const seen = {};
try {
  const page = await browser.newPage();
  const shot = async (name) => { if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true }); };

  // 1. Sign in at the provider (oidc-provider's login form, then consent if asked).
  await page.goto(start);
  await page.waitForSelector('input[name="login"]', { timeout: 15000 });
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', 'any-password');
  await Promise.all([page.waitForLoadState('load'), page.click('button[type="submit"]')]);
  for (let i = 0; i < 3 && !page.url().startsWith(new URL(start).origin); i++) {
    const consent = await page.$('button[type="submit"]');
    if (!consent) break;
    await Promise.all([page.waitForLoadState('load'), consent.click()]);
  }

  // 2. The block page.
  await page.waitForSelector('section[data-requirement]', { timeout: 15000 });
  seen.blocked_items = await page.$$eval('section[data-requirement]',
    (els) => els.map((e) => [e.dataset.requirement, e.dataset.reason]));
  await shot('1-blocked');

  // 3. Open the policy: Accept is disabled until the end is reached.
  await Promise.all([
    page.waitForLoadState('load'),
    page.click(`section[data-requirement="${requirement}"] a.button`),
  ]);
  await page.waitForSelector('#document-end');
  seen.policy_url = page.url();
  seen.accept_disabled_before_scroll = await page.$eval('#accept', (b) => b.disabled);
  await shot('2-policy');
  await page.$eval('#document-end', (e) => e.scrollIntoView());
  await page.waitForFunction(() => !document.getElementById('accept').disabled, null, { timeout: 10000 });
  seen.accept_enabled_after_scroll = true;
  await shot('3-read');

  // 4. Accept: back to where the person was going, on the upstream.
  const [response] = await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    page.click('#accept'),
  ]);
  seen.final_url = page.url();
  seen.final_status = response ? response.status() : null;
  seen.final_body_excerpt = (await page.textContent('body')).slice(0, 2000);
  await shot('4-admitted');
  console.log(JSON.stringify(seen));
} catch (e) {
  console.error(`signoff failed: ${e && e.stack ? e.stack : e}\nseen so far: ${JSON.stringify(seen)}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
