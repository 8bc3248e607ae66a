"""How data/feedback.csv and data/feedback_week2.csv were made (run once; the CSVs are committed).

The corpus is real customer feedback: 3,708 sentences from 309 Amazon product
reviews, each rated for sentiment by 20 people on a scale from -4 to +4, from
C.J. Hutto and Eric Gilbert, "VADER: A Parsimonious Rule-based Model for
Sentiment Analysis of Social Media Text", ICWSM 2014. It ships on PyPI in
the source distribution of vaderSentiment 3.3.2 (MIT licence), in
additional_resources/hutto_ICWSM_2014.tar.gz, file
amazonReviewSnippets_GroundTruth.txt (id, mean rating, sentence).

Labels: the mean rating below -1 is `negative`, above +1 `positive`, else
`neutral`. Sentences of reviews 1-200 are the first batch
(data/feedback.csv, 1,927 rows); reviews 201-309 arrive later
(data/feedback_week2.csv, 1,781 rows; `python more_data.py` appends them).

    pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 -d /tmp/vader
    python corpus.py /tmp/vader/vaderSentiment-3.3.2.tar.gz
"""
import csv
import io
import sys
import tarfile


def label(rating):
    return "negative" if rating < -1 else "positive" if rating > 1 else "neutral"


def main(sdist):
    with tarfile.open(sdist) as outer:
        inner = outer.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        with tarfile.open(fileobj=io.BytesIO(inner.read())) as tar:
            raw = tar.extractfile("hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt").read()
    rows = []
    for line in raw.decode("utf-8").splitlines():
        if line.strip():
            ident, rating, text = line.split("\t", 2)
            rows.append((int(ident.split("_")[0]), text.strip(), label(float(rating))))
    for name, keep in (("feedback.csv", lambda r: r <= 200), ("feedback_week2.csv", lambda r: r > 200)):
        with open(f"data/{name}", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["text", "label"])
            w.writerows((text, lab) for review, text, lab in rows if keep(review))


if __name__ == "__main__":
    main(sys.argv[1])
