from checker.mistakes import mistake


@mistake("add", "Subtracting instead of adding.")
def add_subtracts(a, b):
    return a - b


@mistake("mul", "Multiplication as repeated addition that starts from 1.")
def mul_off_by_one(a, b):
    return a * b + 1
