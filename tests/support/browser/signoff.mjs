// Drives Debian's headless Chromium (playwright-core, no downloaded browser) through Clearance's
// self-service sign-off: sign in at the real provider, see the block page, open the policy, find
// Accept disabled, scroll to the end, accept, land on the upstream. Prints one JSON line.
//
// env: START_URL (a gated URL), LOGIN (account at the provider), REQUIREMENT (the id to accept),
//      CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (optional)

import { launch, screenshots, signIn } from './common.mjs';

const start = process.env.START_URL;
const login = process.env.LOGIN;
const requirement = process.env.REQUIREMENT;
if (!start || !login || !requirement) {
  console.error('START_URL, LOGIN and REQUIREMENT are required');
  process.exit(2);
}

const browser = await launch();
const seen = {};
try {
  const page = await browser.newPage();
  const shot = screenshots(page);

  // 1. Sign in at the provider (oidc-provider's login form, then consent if asked).
  await signIn(page, start, login);

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
