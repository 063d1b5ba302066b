"""What the assistant says must be supported by the dialogue, and its outcomes must be real.

Replay proves every tool call; this check covers the assistant's text. It is pure (no I/O,
no model) and heuristic, tuned so that the gold dialogues produce no problem.

Public API:
- `check_claims(messages, tools, *, scenario_now=None, read_only_tools=None, policy="")
  -> list[ProblemDict]` with codes `ungrounded_claim`, `contradicts_output`,
  `false_success` and `unbacked_action`, each `where` = `messages[i]`.

Factual spans read from every assistant text: amounts with a currency (`$12.50`, `30 EUR`),
percentages, numbers with a unit or a counted noun (`30 days`, `3 units`, `two open slots`,
`2 × ...`), dates (`March 14`, `2025-03-14`, `Friday, January 3`), times of day (`14:00`,
`3pm`), short ids after a cue word (`seat 4B`, `room 12`, `#12`; longer ids are the grounding
check's `stated_ids`), phone and card numbers, quoted strings, and names: strings of a tool
output that the text repeats, and Title Case names that resemble one.

A span is supported by evidence from before the message: the system prompt, the policy,
user turns and earlier tool outputs (their text and JSON values, list lengths and column
sums). Assistant values that passed the check count for later ones, so a chain of
arithmetic is fine. Derivations accepted, one step from supported values: a sum or
difference; a product with a count; a ratio (a half, a third, a value over a count); a
stated percentage of a value, or the value plus or minus it; a value as a percentage of
another; with "at least"/"more than"/"below"... a money value one cent off. Durations: the
number of days (hours, minutes) between two supported dates (times), today and now
included ("in 9 days", "11 hours and 30 minutes"). Dates: today, tomorrow and yesterday by
the scenario clock, what the user's relative dates resolve to, and a supported date plus or
minus a stated number of days ("48 hours" is 2 days). Times: a supported time plus or minus
a stated duration. A weekday written next to a date must be that date's weekday. Numbers in
a question that offers a choice ("Would you like to pay $5 now?") are proposals, not
claims. Unsupported: `ungrounded_claim`, naming the span and the nearest evidence searched.

`contradicts_output`: a span whose neighbouring words name a field of an earlier output
("due 2025-03-14" and `due_date`, "refund of $50" and `refund_amount`), with a different
value. When the sentence names the thing (an id or name of that output object, or of an
object with the same id), its value must be the field's or derived from it; otherwise the
span is only reported when nothing supports it. An unsupported amount, date or time in a
sentence about an output object that has a field of that kind is reported against that
field. A Title Case name that shares words with a name in an earlier output but has a word
found nowhere earlier ("Dune Messiah" for "Dune", "Dr. Elena Ross" for "Dr. Elena Voss") is
reported too.

Outcomes (`false_success`, `unbacked_action`) are checked by `checks/outcomes.py`;
`check_claims` reports its problems too, so it is the one entry point for what the
assistant says.

Known blind spots: prose numbers without a unit or currency ("your order 2 ..."), names
that share no word with any output value, a right value attached to the wrong object
outside a labelled field ("I froze your card ending 4417" when 4417 is the other card),
numbers offered in a question, and any invented value that one of the derivations happens
to reproduce.
"""

from .check import check_claims

__all__ = ["check_claims"]
