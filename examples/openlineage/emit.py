"""A home-grown orchestrator's run loop reporting its runs with OpenLineage (openlineage-python).

The function counts them as lifecycle metrics: a run without a parent is a pipeline run
(pipeline = namespace/name), a run with a parent run facet is a task of that pipeline.
Usage: emit.py URL API_KEY  (the tests run it against a local function with fixed times).
"""
import sys
import uuid

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import error_message_run, output_statistics_output_dataset, parent_run
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpCompression, HttpConfig, HttpTransport

url, api_key = sys.argv[1], sys.argv[2]
client = OpenLineageClient(transport=HttpTransport(HttpConfig(url=url, auth=ApiKeyTokenProvider({"api_key": api_key}))))
gzip_client = OpenLineageClient(
    transport=HttpTransport(
        HttpConfig(url=url, auth=ApiKeyTokenProvider({"api_key": api_key}), compression=HttpCompression.GZIP)
    )
)
PRODUCER = "https://github.com/example/home-grown-orchestrator"
run_id, extract_id, load_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
pipeline = Job(namespace="etl", name="daily_load")
parent = {"parent": parent_run.ParentRunFacet(run=parent_run.Run(runId=run_id), job=parent_run.Job(namespace="etl", name="daily_load"))}


def emit(state, run, job, at, outputs=(), c=client):
    c.emit(RunEvent(eventType=state, eventTime=at, run=run, job=job, producer=PRODUCER, outputs=list(outputs)))


emit(RunState.START, Run(runId=run_id), pipeline, "2026-11-30T06:00:00.000000+00:00")
emit(RunState.START, Run(runId=extract_id, facets=parent), Job(namespace="etl", name="extract"), "2026-11-30T06:00:01.250000+00:00")
rows = {"outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=1200, size=4096)}
emit(RunState.COMPLETE, Run(runId=extract_id, facets=parent), Job(namespace="etl", name="extract"),
     "2026-11-30T06:00:31.500000+00:00", [OutputDataset(namespace="postgres://db", name="public.orders", outputFacets=rows)],
     c=gzip_client)
emit(RunState.START, Run(runId=load_id, facets=parent), Job(namespace="etl", name="load"), "2026-11-30T06:00:32.000000+00:00")
failed = dict(parent, errorMessage=error_message_run.ErrorMessageRunFacet(message="duplicate key for alice@example.com", programmingLanguage="python"))
emit(RunState.FAIL, Run(runId=load_id, facets=failed), Job(namespace="etl", name="load"), "2026-11-30T06:00:40.000000+00:00")
emit(RunState.FAIL, Run(runId=run_id), pipeline, "2026-11-30T06:00:40.500000+00:00")
