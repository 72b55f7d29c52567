"""Rules on EC2 Image Builder pipelines, infrastructure and components."""
