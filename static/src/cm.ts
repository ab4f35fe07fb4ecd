// CodeMirror 6, loaded lazily the first time a file is opened: one view, one state per open file,
// a language per extension, Ctrl/Cmd+S to save, and a merge view for save conflicts.

import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { css } from "@codemirror/lang-css";
import { html } from "@codemirror/lang-html";
import { javascript } from "@codemirror/lang-javascript";
import { json } from "@codemirror/lang-json";
import { markdown } from "@codemirror/lang-markdown";
import { python } from "@codemirror/lang-python";
import { bracketMatching, foldGutter, indentOnInput, syntaxHighlighting, defaultHighlightStyle } from "@codemirror/language";
import { MergeView } from "@codemirror/merge";
import { EditorState, type Extension } from "@codemirror/state";
import { oneDark } from "@codemirror/theme-one-dark";
import {
  drawSelection,
  EditorView,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
} from "@codemirror/view";

export function languageFor(path: string): Extension {
  const ext = path.slice(path.lastIndexOf(".") + 1).toLowerCase();
  switch (ext) {
    case "ts":
      return javascript({ typescript: true });
    case "tsx":
      return javascript({ typescript: true, jsx: true });
    case "js":
    case "mjs":
    case "cjs":
      return javascript();
    case "jsx":
      return javascript({ jsx: true });
    case "py":
      return python();
    case "css":
      return css();
    case "html":
    case "htm":
      return html();
    case "json":
      return json();
    case "md":
    case "markdown":
      return markdown();
    default:
      return [];
  }
}

function base(path: string, readOnly: boolean): Extension[] {
  return [
    lineNumbers(),
    highlightActiveLineGutter(),
    foldGutter(),
    history(),
    drawSelection(),
    indentOnInput(),
    bracketMatching(),
    highlightActiveLine(),
    syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
    oneDark,
    EditorState.readOnly.of(readOnly),
    EditorView.contentAttributes.of({ "aria-label": `Contents of ${path}` }),
    languageFor(path),
  ];
}

export interface EditorHooks {
  change(path: string, text: string): void;
  save(): void;
}

export class CodeEditor {
  private view: EditorView;
  private states = new Map<string, EditorState>();
  private current: string | null = null;

  constructor(
    parent: HTMLElement,
    private hooks: EditorHooks,
  ) {
    this.view = new EditorView({ parent, state: EditorState.create({ doc: "" }) });
  }

  private make(path: string, text: string): EditorState {
    return EditorState.create({
      doc: text,
      extensions: [
        base(path, false),
        keymap.of([
          { key: "Mod-s", preventDefault: true, run: () => (this.hooks.save(), true) },
          ...defaultKeymap,
          ...historyKeymap,
          indentWithTab,
        ]),
        EditorView.updateListener.of((u) => {
          if (u.docChanged) this.hooks.change(path, u.state.doc.toString());
        }),
      ],
    });
  }

  /** Shows `path`, creating its buffer from `text` the first time. */
  show(path: string, text: string): void {
    if (this.current) this.states.set(this.current, this.view.state);
    let s = this.states.get(path);
    if (!s) {
      s = this.make(path, text);
      this.states.set(path, s);
    }
    this.current = path;
    this.view.setState(s);
  }

  /** Replaces a buffer's whole text (an agent or restore change to a clean file). */
  replace(path: string, text: string): void {
    if (this.current === path) {
      this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: text } });
    } else {
      this.states.set(path, this.make(path, text));
    }
  }

  text(path: string): string | null {
    if (this.current === path) return this.view.state.doc.toString();
    return this.states.get(path)?.doc.toString() ?? null;
  }

  close(path: string): void {
    this.states.delete(path);
    if (this.current === path) {
      this.current = null;
      this.view.setState(EditorState.create({ doc: "" }));
    }
  }

  focus(): void {
    this.view.focus();
  }
}

/** Your version (left, editable) against the server's (right, read-only). */
export function mergeView(parent: HTMLElement, path: string, mine: string, theirs: string): { mine(): string } {
  const mv = new MergeView({
    parent,
    a: { doc: mine, extensions: base(path, false) },
    b: { doc: theirs, extensions: base(path, true) },
    highlightChanges: true,
    collapseUnchanged: { margin: 3, minSize: 6 },
    gutter: true,
  });
  return { mine: () => mv.a.state.doc.toString() };
}
