"""Write the study's prompt file: the organism's held-out captions, 128 per GenEval tag.

    python traces/study/make_prompts.py          # -> traces/study/heldout.jsonl

The lines are ``interp.organism.eval_prompts(128)`` interleaved by tag (line i has tag i % 6), so any
prefix of the sweep is balanced by tag: a run stopped by a time limit keeps a balanced study (captions
cycle through each tag's held-out split; single_object has 4 captions, all trained, evaluated on
unseen seeds). The sweep's seed policy
gives every line its own seeds, so repeated captions are distinct (caption, seed) samples.
"""

import json
from pathlib import Path

from interp.organism import eval_prompts

PER_TAG = 128

if __name__ == "__main__":
    out = Path(__file__).with_name("heldout.jsonl")
    pairs = eval_prompts(PER_TAG)
    by_tag = [pairs[t * PER_TAG : (t + 1) * PER_TAG] for t in range(len(pairs) // PER_TAG)]
    lines = [
        json.dumps({"prompt": spec.caption, "tag": spec.tag}) for row in zip(*by_tag, strict=True) for spec, _ in row
    ]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{out}: {len(lines)} prompts")
