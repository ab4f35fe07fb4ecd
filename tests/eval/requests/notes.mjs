// A notes app with search: three notes, a search that matches title or body regardless of
// case, and the notes survive a reload.
import { reload, until, visible } from "../smoke.mjs";

const NOTES = [
  ["Groceries", "eggs and Milk"],
  ["Meeting", "discuss the roadmap"],
  ["Milk bread", "flour, butter, yeast"],
];

export default {
  id: "notes",
  title: "notes app with search",
  template: "fullstack",
  prompt: `Build a notes app with search, with a FastAPI + SQLite backend and a React frontend.
People write notes (a title and a body) and find them again with a search box.

An automated browser test checks exactly this, so keep these names:
- the page has a heading "Notes";
- a text field labelled "Title", a multi-line field labelled "Body", and a button "Save note";
- each note in the list is an element with data-testid="note" showing its title and body;
- a text field labelled "Search" shows only the notes whose title or body contains the typed text, ignoring case (an empty search shows every note);
- notes are stored by the backend, so they survive a page reload.`,

  async smoke(page, t) {
    const notes = () => page.getByTestId("note");
    const count = async (n) => until(async () => (await notes().count()) === n, `${n} notes in the list (data-testid="note")`);
    await t.step("the page shows the Notes heading", () =>
      visible(page.getByRole("heading", { name: "Notes" }), 'the heading "Notes"', 30_000),
    );
    await t.step("write three notes", async () => {
      for (const [title, body] of NOTES) {
        await page.getByLabel("Title", { exact: true }).fill(title);
        await page.getByLabel("Body", { exact: true }).fill(body);
        await page.getByRole("button", { name: "Save note" }).click();
        await visible(notes().filter({ hasText: title }), `the note "${title}"`);
      }
      await count(3);
    });
    const search = () => page.getByLabel("Search", { exact: true });
    await t.step('search "milk" matches a body and a title, ignoring case', async () => {
      await search().fill("milk");
      await count(2);
      await visible(notes().filter({ hasText: "Groceries" }), '"Groceries" (body has "Milk")');
      await visible(notes().filter({ hasText: "Milk bread" }), '"Milk bread"');
    });
    await t.step('search "ROADMAP" finds the meeting only', async () => {
      await search().fill("ROADMAP");
      await count(1);
      await visible(notes().filter({ hasText: "Meeting" }), '"Meeting"');
    });
    await t.step("an empty search shows every note", async () => {
      await search().fill("");
      await count(3);
    });
    await t.step("notes survive a reload", async () => {
      await reload(page);
      await visible(notes(), "the notes after a reload", 30_000);
      await count(3);
    });
  },
};
