// Helpers the smoke scripts share: waiting for an observable condition with a deadline, and
// a step log, so a failed smoke says which step broke. playwright-core has no `expect`.

/** Polls `fn` (sync or async) until it returns a truthy value; throws `what` after `ms`. */
export async function until(fn, what, ms = 15_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${last.message ?? last})` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A step log: `await t.step("name", async () => ...)` records the step or the error. */
export function steps() {
  const done = [];
  return {
    done,
    async step(name, fn) {
      try {
        const v = await fn();
        done.push(name);
        return v;
      } catch (e) {
        throw new Error(`step "${name}" failed: ${e.message ?? e}`);
      }
    },
  };
}

/** Waits until the locator is visible. */
export async function visible(locator, what, ms = 15_000) {
  try {
    await locator.first().waitFor({ state: "visible", timeout: ms });
  } catch (e) {
    throw new Error(`${what} is not visible after ${ms} ms: ${String(e.message ?? e).split("\n")[0]}`);
  }
}

/** Reloads and waits for the page's document, as a person pressing F5 would. */
export async function reload(page) {
  await page.reload({ waitUntil: "domcontentloaded", timeout: 30_000 });
}
