// Shared by the browser drivers: launch Debian's headless Chromium (playwright-core, no
// downloaded browser) and sign in at the real provider (oidc-provider's login form, then consent
// if asked) until the browser is back on the gate's origin.

import { chromium } from 'playwright-core';

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export function screenshots(page) {
  const dir = process.env.SCREENSHOT_DIR;
  return async (name) => { if (dir) await page.screenshot({ path: `${dir}/${name}.png`, fullPage: true }); };
}

export async function signIn(page, start, login) {
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
}
