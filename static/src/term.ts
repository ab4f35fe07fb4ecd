// xterm.js, loaded lazily with the terminal panel. Its stylesheet is bundled as text and
// injected once, so there is no separate CSS request and nothing from a CDN.

import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import xtermCss from "@xterm/xterm/css/xterm.css";

let styled = false;

export function createTerminal(parent: HTMLElement): { term: Terminal; fit: () => void } {
  if (!styled) {
    const s = document.createElement("style");
    s.textContent = xtermCss;
    document.head.append(s);
    styled = true;
  }
  const term = new Terminal({
    convertEol: true,
    cursorBlink: true,
    fontSize: 13,
    fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
    scrollback: 5000,
    theme: { background: "#0b0d11", foreground: "#e6e8ee" },
  });
  const fitter = new FitAddon();
  term.loadAddon(fitter);
  term.open(parent);
  const fit = (): void => {
    try {
      fitter.fit();
    } catch {
      /* hidden panel: no size yet */
    }
  };
  fit();
  new ResizeObserver(fit).observe(parent);
  return { term, fit };
}
