import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { ServerConfig } from '../../server/config.ts';
import { makeTempDir, startTestServer, type TestServer } from './server.ts';

/*
 * Browser tests: Debian's Chromium driven by playwright-core (never a downloaded browser), a real
 * server started here, the UI built from the current source, screenshots under test-artifacts/ui.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const artifactsDir = path.join(root, 'test-artifacts', 'ui');
const chromiumPath = process.env.CONVOY_CHROMIUM ?? '/usr/bin/chromium';
const chromiumArgs = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--no-first-run'];

let built: Promise<string> | undefined;

/**
 * Builds the UI once per test process into a temp dir, so a test always drives the source it
 * sits beside (dist/ui may be stale, or being rebuilt by another process).
 */
export function buildUi(): Promise<string> {
  built ??= (async () => {
    const outDir = await makeTempDir('convoy-ui-');
    await promisify(execFile)(process.execPath, [path.join(root, 'scripts/build-ui.js'), '--outdir', outDir], { cwd: root });
    return outDir;
  })();
  return built;
}

export interface BrowserFixture {
  server: TestServer;
  browser: Browser;
  /** A fresh context (its own storage: a new tab session) and a page in it. */
  newPage(): Promise<Page>;
  /** Saves a full-page screenshot as test-artifacts/ui/<name>.png. */
  screenshot(page: Page, name: string): Promise<void>;
  /** axe-core violations of serious or critical impact on the page as it is now. */
  accessibility(page: Page): Promise<string[]>;
  /** Errors the pages logged (console errors, CSP refusals, uncaught exceptions). */
  pageErrors: string[];
}

let axeSource: Promise<string> | undefined;

export async function withBrowser(t: ExecutionContext, run: (fx: BrowserFixture) => Promise<void>, overrides: Partial<ServerConfig> = {}): Promise<void> {
  const uiDir = await buildUi();
  const server = await startTestServer(overrides, { uiDir });
  const browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs, headless: true });
  const contexts: BrowserContext[] = [];
  const pageErrors: string[] = [];
  await fs.mkdir(artifactsDir, { recursive: true });
  try {
    await run({
      server,
      browser,
      pageErrors,
      async newPage() {
        const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-GB', timezoneId: 'UTC' });
        contexts.push(context);
        const page = await context.newPage();
        page.on('console', (message) => {
          // A 401/403/404 the UI handles shows up as a failed resource load: not an error of the page.
          if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) pageErrors.push(message.text());
        });
        page.on('pageerror', (error) => pageErrors.push(String(error)));
        // Generous: the suite runs many servers and browsers at once on two shared cores.
        page.setDefaultTimeout(30_000);
        return page;
      },
      async screenshot(page, name) {
        await page.screenshot({ path: path.join(artifactsDir, `${name}.png`), fullPage: true });
      },
      async accessibility(page) {
        axeSource ??= fs.readFile(path.join(root, 'node_modules/axe-core/axe.min.js'), 'utf8');
        // Evaluated through the DevTools protocol, which the page's CSP does not govern (an
        // injected <script> would be refused by it, rightly).
        await page.evaluate(await axeSource);
        const results = await page.evaluate(async () => {
          const axe = (globalThis as unknown as { axe: { run(context: unknown, options: unknown): Promise<{ violations: { id: string; impact: string; help: string; nodes: { target: unknown[] }[] }[] }> } }).axe;
          // The whole document (axe's default context); this function runs in the page.
          return axe.run((globalThis as unknown as { document: unknown }).document, { resultTypes: ['violations'] });
        });
        return results.violations
          .filter((v) => v.impact === 'serious' || v.impact === 'critical')
          .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => JSON.stringify(n.target)).join(', ')}`);
      },
    });
    t.deepEqual(server.responseViolations, [], 'answers the OpenAPI document does not describe');
  } catch (error) {
    t.log(server.logs.slice(-30).join(''));
    throw error;
  } finally {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser.close();
    await server.dispose();
  }
}

/** Signs in through the form, as a person would. */
export async function signIn(page: Page, baseUrl: string, user: string, token: string, at = '/'): Promise<void> {
  await page.goto(`${baseUrl}${at}`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Access token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}
