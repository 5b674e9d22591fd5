"""One real retrain on the shared data: does learning from a news site's own moderators help?

Civil Comments (reader comments from news sites) plays the site: its rater labels are imported as the
site's moderator labels. The "before" model is trained on every other public set; then
``train --with-labels --promote-if-better`` trains a candidate with the site's labels (3x weight, the
newest 20% held out, a frozen stratified sample never trained on) and runs the promotion guard, whose
report gives the before/after figures per attribute.

Usage: python bench/retrain_demo.py [--data-dir ../shared/data] [--out reports/retrain-demo]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OTHER_SETS = ["youtube", "sms", "wordpress", "jigsaw", "davidson", "olid"]
#: Civil Comments column -> our attribute (rater fraction >= 0.5 counts as a moderator's "yes").
CIVIL_ATTRIBUTES = {
    "toxicity": "toxicity",
    "severe_toxicity": "severe_toxicity",
    "insult": "insult",
    "obscene": "profanity",
    "threat": "threat",
    "identity_attack": "identity_attack",
}


def write_site_labels(data_dir: Path, path: Path) -> int:
    source = data_dir / "civil-comments-sample" / "civil_comments.csv"
    with source.open(encoding="utf-8") as file, path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "text", "spam", *CIVIL_ATTRIBUTES.values()])
        count = 0
        for count, row in enumerate(csv.DictReader(file), start=1):
            flags = [1 if float(row[column]) >= 0.5 else 0 for column in CIVIL_ATTRIBUTES]
            writer.writerow([f"civil-{count}", row["text"], 0, *flags])
    return count


def run(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "retrain-demo")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="retrain-demo-"))
    try:
        database = f"sqlite:///{work / 'site.db'}"
        registry = str(work / "models")
        labels = work / "site-labels.csv"
        print(f"site labels: {write_site_labels(args.data_dir, labels)} Civil Comments rows")
        from sqlalchemy import create_engine

        from service.db import Base

        Base.metadata.create_all(create_engine(database))
        data = ["--data-dir", str(args.data_dir)]
        run("-m", "classifier", "train", *data, "--sets", *OTHER_SETS, "--registry", registry, "--activate")
        run("-m", "classifier", "import", "csv", str(labels), "--database-url", database)
        site = [
            "--with-labels",
            "--database-url",
            database,
            "--promote-if-better",
            "--reports-dir",
            str(args.out),
        ]
        run("-m", "classifier", "train", *data, "--sets", *OTHER_SETS, "--registry", registry, *site)
        print(f"report: {args.out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
