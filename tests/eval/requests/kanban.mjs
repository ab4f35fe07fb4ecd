// A kanban board: a card is added to "To do", moved right twice to "Done", and stays there
// after a reload.
import { reload, visible } from "../smoke.mjs";

export default {
  id: "kanban",
  title: "kanban board",
  template: "fullstack",
  prompt: `Build a kanban board with a FastAPI + SQLite backend and a React frontend.
People add cards and move them between three columns.

An automated browser test checks exactly this, so keep these names:
- the page has a heading "Board";
- three columns, elements with data-testid="column-todo", "column-doing" and "column-done", headed "To do", "Doing" and "Done";
- a text field labelled "New card" and a button "Add card" that adds the card to "To do";
- each card is an element with data-testid="card" showing its title, with buttons "Move left" and "Move right" that move it one column (dragging may be offered too);
- cards and their columns are stored by the backend, so they survive a page reload.`,

  async smoke(page, t) {
    const inColumn = (col) => page.getByTestId(`column-${col}`).getByTestId("card").filter({ hasText: "Write the spec" });
    await t.step("the page shows the board", async () => {
      await visible(page.getByRole("heading", { name: "Board" }), 'the heading "Board"', 30_000);
      for (const col of ["todo", "doing", "done"]) await visible(page.getByTestId(`column-${col}`), `data-testid="column-${col}"`);
    });
    await t.step('add a card to "To do"', async () => {
      await page.getByLabel("New card").fill("Write the spec");
      await page.getByRole("button", { name: "Add card" }).click();
      await visible(inColumn("todo"), 'the card in "To do"');
    });
    await t.step('move it right to "Doing", then "Done"', async () => {
      await inColumn("todo").getByRole("button", { name: "Move right" }).click();
      await visible(inColumn("doing"), 'the card in "Doing"');
      await inColumn("doing").getByRole("button", { name: "Move right" }).click();
      await visible(inColumn("done"), 'the card in "Done"');
    });
    await t.step('it is still in "Done" after a reload', async () => {
      await page.waitForLoadState("networkidle", { timeout: 15_000 }).catch(() => {});
      await reload(page);
      await visible(inColumn("done"), 'the card in "Done" after a reload', 30_000);
      if ((await inColumn("todo").count()) + (await inColumn("doing").count()) > 0) {
        throw new Error("the card also shows in another column");
      }
    });
  },
};
