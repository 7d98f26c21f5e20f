-- Demo PACS auto-routing: when a study has been quiet for StableAge seconds, forward its MR series (only) to
-- neurotriage in one asynchronous C-STORE job. Sending the whole study at once, instead of each instance as it
-- arrives, keeps one association per study, the way a PACS routing rule usually does it.
-- The target is the DicomModalities entry named below (see orthanc.json).

local TARGET = 'neurotriage'

function OnStableStudy(studyId, tags, metadata)
  local series = ParseJson(RestApiGet('/studies/' .. studyId .. '/series'))
  local mr = {}
  for _, s in ipairs(series) do
    if s['MainDicomTags'] ~= nil and s['MainDicomTags']['Modality'] == 'MR' then
      table.insert(mr, s['ID'])
    end
  end
  if #mr == 0 then
    return
  end
  -- Orthanc identifiers only: the study's tags carry patient identity and never go to the log.
  print('neurotriage auto-route: study ' .. studyId .. ', ' .. #mr .. ' MR series')
  RestApiPost('/modalities/' .. TARGET .. '/store',
    DumpJson({ Resources = mr, Asynchronous = true }, true))
end
