from checker.mistakes import mistake


@mistake("neg", "Reaching for operator.neg, which this kata forbids.")
def neg_operator(x):
    import operator

    return operator.neg(x)
