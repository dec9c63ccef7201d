"""Flag types shared by every command (safe to skip on a first read): each flag is checked when parsed, and a refusal
names the flag. An argparse `type=` turns the text into a value or raises ArgumentTypeError, which argparse prints
with the flag's name ("argument --save-every/--save_every: must be an integer >= 1, got '0'") and exits with 2.
"""

import argparse
import math


def checked(kind, test, rule):
    """A flag type: the text as `kind` (int, or a finite float) when test(value) holds, else refused with `rule`."""
    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or (kind is float and not math.isfinite(value)) or not test(value):
            raise argparse.ArgumentTypeError(f"{rule}, got {text!r}")
        return value
    return convert


positive_int = checked(int, lambda v: v >= 1, "must be an integer >= 1")
count = checked(int, lambda v: v >= 0, "must be an integer >= 0")
at_least_two = checked(int, lambda v: v >= 2, "must be an integer >= 2 (a group needs two rewards to compare)")
positive = checked(float, lambda v: v > 0, "must be a number > 0")
non_negative = checked(float, lambda v: v >= 0, "must be a number >= 0")
probability = checked(float, lambda v: 0 < v <= 1, "must be a number in (0, 1]")
below_one = checked(float, lambda v: 0 <= v < 1, "must be a number in [0, 1)")
toy_clips = checked(int, lambda v: v >= 4, "must be an integer >= 4 (the last quarter of the clips is the test split)")

TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def boolean(text):
    """true/false, 1/0, yes/no, on/off, any case; anything else is refused (never silently False)."""
    if text.lower() in TRUE + FALSE:
        return text.lower() in TRUE
    raise argparse.ArgumentTypeError(f"must be one of {'/'.join(TRUE)} or {'/'.join(FALSE)}, got {text!r}")


def add_switch(parser, *flags, help, default=False, **kwargs):
    """A boolean flag: bare (`--quick`) it is true; it also takes a value (`--quick false`)."""
    parser.add_argument(*flags, type=boolean, nargs="?", const=True, default=default, help=help, **kwargs)


REQUIRED = dict(required=True, default=argparse.SUPPRESS)  # a flag that must be given: --help shows no default


if __name__ == "__main__":
    raise SystemExit("flags.py is a library module, not a command: see train.py / eval.py / select_data.py / "
                     "convert.py")
