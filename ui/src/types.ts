// The JSON shapes the pages read, as the REST API returns them (see the server's schemas).

export type MetricValue = number | string;

export interface Experiment {
  experiment_id: string;
  name: string;
  lifecycle_stage: string;
  creation_time: number;
  last_update_time: number;
  tags: Record<string, string>;
}

export interface Run {
  run_id: string;
  experiment_id: string;
  run_name: string;
  status: string;
  start_time: number;
  end_time: number | null;
  lifecycle_stage: string;
  user: string;
  parent_run_id: string | null;
  host: string;
  pid: number | null;
  metrics: Record<string, MetricValue>;
  params: Record<string, string>;
  tags: Record<string, string>;
}

export interface RunPage {
  runs: Run[];
  next_offset: number | null;
  next_page_token: string | null;
}

export interface ExperimentKeys {
  metrics: string[];
  params: string[];
  tags: string[];
}

export interface MetricPoint {
  key: string;
  value: MetricValue;
  timestamp: number;
  step: number;
}

export interface ArtifactEntry {
  path: string;
  sha256: string;
  size: number;
}
