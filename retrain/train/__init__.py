"""retrain.train."""

from retrain.train.plan import TrainingHistory, TrainingPlan, plan_training, training_history

__all__ = ["TrainingHistory", "TrainingPlan", "plan_training", "training_history"]
