"""Phase B: Quantum ESPRESSO input writing, running, parsing and error recovery."""

from mlip_autopipec.dft.errors import ErrorCode
from mlip_autopipec.dft.parser import PwResult, parse_pw_output
from mlip_autopipec.dft.recovery import RecoveryHandler
from mlip_autopipec.dft.runner import LabelOutcome, PwProfile, QERunner, label_structure

QEOutputParser = parse_pw_output

__all__ = [
    "ErrorCode",
    "LabelOutcome",
    "PwProfile",
    "PwResult",
    "QEOutputParser",
    "QERunner",
    "RecoveryHandler",
    "label_structure",
    "parse_pw_output",
]
