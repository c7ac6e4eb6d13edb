"""Prints results.jsonl (one JSON object per comparison) as a markdown table."""
import json
import sys


def main(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    print("| model | format | setting | runtime | our ppl | their ppl | Δppl | max abs Δ log-softmax | mean | pass |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        md, mn = r.get("max_dlogsoftmax"), r.get("mean_dlogsoftmax")
        if "our_ppl" not in r:  # the load failed: its exact error
            print(f"| {r['model']} | {r['format']} | {r['setting']} | {r['runtime']} | - | - | - | - | - | "
                  f"FAIL: {r.get('error', '?')} |")
            continue
        print(f"| {r['model']} | {r['format']} | {r['setting']} | {r['runtime']} | {r['our_ppl']:.6f} | "
              f"{r['their_ppl']:.6f} | {r['ppl_rel']:+.4%} | "
              f"{'-' if md is None else f'{md:.2e}'} | "
              f"{'-' if mn is None else f'{mn:.1e}'} | "
              f"{'pass' if r['passed'] else 'FAIL'} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/ecosystem/results.jsonl")
