"""ultralytics engine pieces for SpikeYOLO: the Model subclass and the trainer."""
