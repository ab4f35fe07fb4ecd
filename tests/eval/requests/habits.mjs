// A habit tracker with a chart: add a habit, mark it done today, see a streak and a chart of
// the last 7 days, and find it all again after a reload.
import { reload, until, visible } from "../smoke.mjs";

export default {
  id: "habits",
  title: "habit tracker with a chart",
  template: "fullstack",
  prompt: `Build a habit tracker with a FastAPI + SQLite backend and a React frontend.
People add habits, mark a habit done for today, see each habit's current streak, and see a chart
of how many habits were done on each of the last 7 days.

An automated browser test checks exactly this, so keep these names:
- the page has a heading "Habits";
- a text field labelled "New habit" and a button "Add habit";
- each habit is a list item (<li>) showing its name, a button "Done today", and its streak as the text "Streak: N" (N = consecutive days done, ending today);
- the chart is an element with data-testid="habit-chart" that contains an <svg> or a <canvas> with a size;
- habits and completions are stored by the backend, so they survive a page reload.`,

  async smoke(page, t) {
    await t.step("the page shows the Habits heading", () =>
      visible(page.getByRole("heading", { name: "Habits" }), 'the heading "Habits"', 30_000),
    );
    const row = () => page.getByRole("listitem").filter({ hasText: "Read 10 pages" });
    await t.step("add a habit", async () => {
      await page.getByLabel("New habit").fill("Read 10 pages");
      await page.getByRole("button", { name: "Add habit" }).click();
      await visible(row(), 'a list item "Read 10 pages"');
      await visible(row().getByText(/Streak:\s*0\b/), '"Streak: 0" on the new habit');
    });
    await t.step("mark it done today: the streak becomes 1", async () => {
      await row().getByRole("button", { name: "Done today" }).click();
      await visible(row().getByText(/Streak:\s*1\b/), '"Streak: 1" after marking it done');
    });
    await t.step("the chart is drawn", async () => {
      const chart = page.getByTestId("habit-chart");
      await visible(chart, 'the element data-testid="habit-chart"');
      await until(
        () =>
          chart.evaluate((el) =>
            [...el.querySelectorAll("svg, canvas")].some((c) => {
              const r = c.getBoundingClientRect();
              return r.width > 20 && r.height > 20;
            }),
          ),
        "an <svg> or <canvas> larger than 20×20 px inside the chart",
      );
    });
    await t.step("habit and streak survive a reload", async () => {
      await page.waitForLoadState("networkidle", { timeout: 15_000 }).catch(() => {});
      await reload(page);
      await visible(row(), '"Read 10 pages" after a reload', 30_000);
      await visible(row().getByText(/Streak:\s*1\b/), '"Streak: 1" after a reload');
    });
  },
};
