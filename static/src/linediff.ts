// A small line diff (LCS on lines, with common prefix/suffix trimmed) for the checkpoint view;
// context lines far from a change are folded.

export interface DiffLine {
  op: "+" | "-" | " " | "…";
  text: string;
}

export function lineDiff(a: string, b: string, context = 3): DiffLine[] {
  const A = a.split("\n");
  const B = b.split("\n");
  let pre = 0;
  while (pre < A.length && pre < B.length && A[pre] === B[pre]) pre++;
  let suf = 0;
  while (suf < A.length - pre && suf < B.length - pre && A[A.length - 1 - suf] === B[B.length - 1 - suf]) suf++;
  const a2 = A.slice(pre, A.length - suf);
  const b2 = B.slice(pre, B.length - suf);
  const out: DiffLine[] = A.slice(0, pre).map((text) => ({ op: " ", text }));
  if (a2.length * b2.length > 4_000_000) {
    // Too big for LCS in the browser: show it as a replacement.
    out.push(...a2.map((text) => ({ op: "-" as const, text })), ...b2.map((text) => ({ op: "+" as const, text })));
  } else {
    const n = a2.length;
    const m = b2.length;
    const dp: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--)
      for (let j = m - 1; j >= 0; j--) dp[i]![j] = a2[i] === b2[j] ? dp[i + 1]![j + 1]! + 1 : Math.max(dp[i + 1]![j]!, dp[i]![j + 1]!);
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a2[i] === b2[j]) {
        out.push({ op: " ", text: a2[i]! });
        i++;
        j++;
      } else if (j < m && (i >= n || dp[i]![j + 1]! >= dp[i + 1]![j]!)) out.push({ op: "+", text: b2[j++]! });
      else out.push({ op: "-", text: a2[i++]! });
    }
  }
  out.push(...A.slice(A.length - suf).map((text) => ({ op: " " as const, text })));
  // Fold unchanged runs longer than 2*context.
  const keep = out.map(() => false);
  out.forEach((l, k) => {
    if (l.op !== " ") for (let d = Math.max(0, k - context); d <= Math.min(out.length - 1, k + context); d++) keep[d] = true;
  });
  const folded: DiffLine[] = [];
  let skipped = 0;
  out.forEach((l, k) => {
    if (keep[k]) {
      if (skipped) folded.push({ op: "…", text: `${skipped} unchanged lines` });
      skipped = 0;
      folded.push(l);
    } else skipped++;
  });
  if (skipped && folded.length) folded.push({ op: "…", text: `${skipped} unchanged lines` });
  return folded;
}
