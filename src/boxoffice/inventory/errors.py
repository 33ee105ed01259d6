from boxoffice.errors import Conflict


class CapacityBelowSold(Conflict):
    code, title = "capacity_below_sold", "Capacity cannot go below the seats sold and held"
