"""The argparse types every command shares: numbers are refused with one line where no run can use them."""
from __future__ import annotations

import argparse


def finite_float(low: float, high: float = float("inf"), low_open: bool = False):
    """An argparse type: a number in [low, high] ((low, high] with ``low_open``); nan and inf are refused."""
    def parse(text: str) -> float:
        import math
        value = float(text)
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            bounds = f"{'(' if low_open else '['}{low:g}, " + (f"{high:g}]" if math.isfinite(high) else "∞)")
            raise argparse.ArgumentTypeError(f"must be a finite number in {bounds}, not {text}")
        return value
    parse.__name__ = "number"  # argparse's word for text that is no number at all: "invalid number value"
    return parse


def int_between(low: int, high: int):
    """An argparse type: a whole number in [low, high]."""
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, not {value}")
        return value
    parse.__name__ = "whole number"
    return parse


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


positive_int.__name__ = non_negative_int.__name__ = "whole number"  # "invalid whole number value: 'x'"
