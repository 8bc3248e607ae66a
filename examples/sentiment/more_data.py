"""This week's labelled feedback arrives: append data/feedback_week2.csv to data/feedback.csv (once)."""
import csv

with open("data/feedback.csv", newline="", encoding="utf-8") as f:
    have = list(csv.reader(f))
with open("data/feedback_week2.csv", newline="", encoding="utf-8") as f:
    new = list(csv.reader(f))[1:]
if new[-1] in have:
    print("data/feedback.csv already has this week's feedback")
else:
    with open("data/feedback.csv", "a", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(new)
    print(f"data/feedback.csv: {len(have) - 1} + {len(new)} rows")
