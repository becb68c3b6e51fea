"""Time and cost before the click: a scout render on this computer (:mod:`.scout`), prices
from AWS (:mod:`.prices`) and the arithmetic that turns both into one line (:mod:`.model`).
"""
