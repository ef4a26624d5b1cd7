"""Learning: the training loop and learning-rule objects."""
from .checkpoint import RunError, RunFinished, RunLocked, UnreadableFile, is_finished
from .eprop import FEEDBACKS, RFLO, EProp
from .losses import masked_cross_entropy, masked_mse, output_error, task_loss
from .rules import BPTT, RULES, LearningRule, Rule, available_rules, make_rule, register_rule
from .train import TrainingDiverged, TrainResult, evaluate, evaluate_population, train

__all__ = [
    "EProp", "FEEDBACKS", "RFLO", "RunError", "RunFinished", "RunLocked", "UnreadableFile", "is_finished",
    "BPTT", "RULES", "LearningRule", "Rule", "TrainResult", "TrainingDiverged", "available_rules", "evaluate",
    "evaluate_population", "make_rule",
    "masked_cross_entropy", "masked_mse", "output_error", "register_rule", "task_loss", "train",
]  # fmt: skip
