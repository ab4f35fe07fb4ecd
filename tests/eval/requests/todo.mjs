// The todo app: add a todo, tick it done, and both survive a reload (the backend stores them).
import { reload, until, visible } from "../smoke.mjs";

export default {
  id: "todo",
  title: "todo app",
  template: "fullstack",
  prompt: `Build a todo app with a FastAPI + SQLite backend and a React frontend.

An automated browser test checks exactly this, so keep these names:
- the page has a heading "Todos";
- a text field labelled "New todo" and a button "Add" that adds the typed todo;
- each todo is shown as a checkbox whose label is the todo's title; ticking it marks the todo done;
- todos and their done state are stored by the backend, so they survive a page reload.`,

  async smoke(page, t) {
    await t.step("the page shows the Todos heading", () =>
      visible(page.getByRole("heading", { name: "Todos" }), 'the heading "Todos"', 30_000),
    );
    await t.step("add a todo", async () => {
      await page.getByLabel("New todo").fill("buy milk");
      await page.getByRole("button", { name: "Add", exact: true }).click();
      await visible(page.getByRole("checkbox", { name: "buy milk" }), 'a checkbox labelled "buy milk"');
    });
    await t.step("tick it done", async () => {
      const box = page.getByRole("checkbox", { name: "buy milk" });
      // A click, not check(): an app may tick the box only once the backend has answered.
      await box.click();
      await until(() => box.isChecked(), 'the "buy milk" checkbox to be ticked');
      // Let the save reach the backend before the reload (a person would see the tick first).
      await page.waitForLoadState("networkidle", { timeout: 15_000 }).catch(() => {});
    });
    await t.step("both survive a reload", async () => {
      await reload(page);
      const box = page.getByRole("checkbox", { name: "buy milk" });
      await visible(box, '"buy milk" after a reload', 30_000);
      await until(() => box.isChecked(), '"buy milk" to be ticked after a reload');
    });
  },
};
