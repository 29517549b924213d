"""Detection around the models: the detector stage (`stage.py`: scheduling the batches, events,
alerts held behind their evidence), the batch scheduler, the event tracker, the kinematic baseline
detector and each camera's own normal. The Hawkeye model and its LM live in stream/llm/."""
