// The app requests the evaluation runs, in table order.
import habits from "./habits.mjs";
import kanban from "./kanban.mjs";
import notes from "./notes.mjs";
import shortener from "./shortener.mjs";
import todo from "./todo.mjs";

export const REQUESTS = [todo, habits, notes, kanban, shortener];
